#ifndef AUTONOMY_CSECCOMP_SHIM_H
#define AUTONOMY_CSECCOMP_SHIM_H
// libseccomp (Debian libseccomp-dev): the test sandbox's system-call filter, compiled to BPF for bubblewrap's
// --seccomp. SCMP_ACT_ERRNO is a macro and seccomp_rule_add is variadic: both wrapped here.
#include <stddef.h>
#include <seccomp.h>

static inline uint32_t cseccomp_errno_action(int code) { return SCMP_ACT_ERRNO(code); }
static inline uint32_t cseccomp_allow(void) { return SCMP_ACT_ALLOW; }

/// A rule on one syscall with no argument condition, or with `arg & mask == value`.
static inline int cseccomp_rule(scmp_filter_ctx ctx, uint32_t action, int syscall, int has_condition, unsigned int arg, uint64_t mask, uint64_t value) {
    if (!has_condition) return seccomp_rule_add_array(ctx, action, syscall, 0, NULL);
    struct scmp_arg_cmp cmp = { .arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value };
    return seccomp_rule_add_array(ctx, action, syscall, 1, &cmp);
}
#endif
