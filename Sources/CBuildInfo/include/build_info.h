#ifndef AUTONOMY_BUILD_INFO_H
#define AUTONOMY_BUILD_INFO_H
/// The git commit this binary was built from: AUTONOMY_GIT_COMMIT from the build's environment (see Package.swift),
/// "unknown" when the build did not set it.
const char *autonomy_build_commit(void);
#endif
