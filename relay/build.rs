//! Build script: the git commit the binary is built from, for `--version` (`TESSERA_GIT_COMMIT`). The logic is
//! shared by the three binaries and written once, in bin-support/build/git_commit.rs.

include!("../bin-support/build/git_commit.rs");
