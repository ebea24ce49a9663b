################################################################################
#
# tessera-agent (an example external package: not built in this repository's CI; the scripts it calls are)
#
################################################################################

TESSERA_AGENT_VERSION = main
TESSERA_AGENT_SITE = https://github.com/tessera/tessera.git
TESSERA_AGENT_SITE_METHOD = git
TESSERA_AGENT_LICENSE = Apache-2.0
TESSERA_AGENT_LICENSE_FILES = Cargo.toml
TESSERA_AGENT_DEPENDENCIES = host-rustc

# The appliance profile (fat LTO, one codegen unit, size-optimised Rust, stripped) and only the agent, without the
# completion and man page generators (`cli-docs`).
define TESSERA_AGENT_BUILD_CMDS
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) \
		cargo build --offline --profile appliance -p tessera-agent --no-default-features \
			--target $(RUSTC_TARGET_NAME) --manifest-path $(@D)/Cargo.toml
endef

# The same overlay the other firmware flows use: binary, provisioning script, configuration template, hardened
# unit, tmpfiles and sysusers entries.
define TESSERA_AGENT_INSTALL_TARGET_CMDS
	$(@D)/cross/package $(RUSTC_TARGET_NAME) \
		--binary $(@D)/target/$(RUSTC_TARGET_NAME)/appliance/tessera-agent \
		--out $(@D)/tessera-agent-rootfs.tar.gz
	tar -xzf $(@D)/tessera-agent-rootfs.tar.gz -C $(TARGET_DIR) --no-same-owner
endef

define TESSERA_AGENT_USERS
	tessera -1 tessera -1 * /var/lib/tessera - - Tessera agent
endef

$(eval $(cargo-package))
