#ifndef AUTONOMY_BUILD_INFO_H
#define AUTONOMY_BUILD_INFO_H
/// The git commit this binary was built from (Package.swift passes it as AUTONOMY_GIT_COMMIT; "unknown" outside git).
const char *autonomy_build_commit(void);
#endif
