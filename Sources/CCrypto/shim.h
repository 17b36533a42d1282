#ifndef AUTONOMY_CCRYPTO_SHIM_H
#define AUTONOMY_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
