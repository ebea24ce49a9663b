# Example Yocto recipe for tessera-agent (an example: not built in this repository's CI; the scripts it calls are).
# Needs oe-core's cargo classes (Kirkstone or later). Generate the crate list once, and after each Cargo.lock change:
#     bitbake -c update_crates tessera-agent      # writes tessera-agent-crates.inc
SUMMARY = "Tessera agent: credentials for appliance workloads, synced by commitment-checked peer rewrap"
HOMEPAGE = "https://github.com/tessera/tessera"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=9;endline=9;md5=2507bd5f0713f05419cd2f22fa06fe62"

SRC_URI = "git://github.com/tessera/tessera.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

inherit cargo cargo-update-recipe-crates systemd useradd
require ${BPN}-crates.inc

# The appliance profile (fat LTO, one codegen unit, size-optimised Rust, stripped) and only the agent.
# Without the completion and man page generators (`cli-docs`): they cost the size budget.
CARGO_BUILD_FLAGS:append = " -p tessera-agent --no-default-features"
BUILD_MODE = "--profile appliance"
BUILD_DIR = "appliance"
# Yocto strips and splits debug info itself.
INHIBIT_PACKAGE_STRIP = "0"

do_install() {
    # The same overlay the other firmware flows use: binary, provisioning script, configuration template,
    # hardened unit, tmpfiles and sysusers entries.
    ${S}/cross/package ${RUST_HOST_SYS} \
        --binary ${B}/target/${CARGO_TARGET_SUBDIR}/tessera-agent \
        --out ${WORKDIR}/tessera-agent-rootfs.tar.gz
    tar -xzf ${WORKDIR}/tessera-agent-rootfs.tar.gz -C ${D} --no-same-owner
}

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir /var/lib/tessera --no-create-home --shell /sbin/nologin --user-group tessera"

SYSTEMD_SERVICE:${PN} = "tessera-agent.service"
# Enabled by tessera-provision once the appliance is enrolled (the unit does nothing before).
SYSTEMD_AUTO_ENABLE:${PN} = "disable"

FILES:${PN} += "${nonarch_libdir}/tmpfiles.d ${nonarch_libdir}/sysusers.d ${systemd_system_unitdir}"
CONFFILES:${PN} = "${sysconfdir}/tessera/agent.toml"
RDEPENDS:${PN} = "util-linux-runuser"
