#include "build_info.h"
#ifndef AUTONOMY_GIT_COMMIT
#define AUTONOMY_GIT_COMMIT "unknown"
#endif
const char *autonomy_build_commit(void) { return AUTONOMY_GIT_COMMIT; }
