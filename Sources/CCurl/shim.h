#ifndef AUTONOMY_CCURL_SHIM_H
#define AUTONOMY_CCURL_SHIM_H
// libcurl for Swift. Swift cannot call C variadic functions, so each curl_easy_setopt/getinfo
// argument type gets one non-variadic static inline wrapper here. This header is the only C
// boundary for HTTP in the package.
#include <curl/curl.h>
#include <fcntl.h>

static inline CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_write_cb(CURL *h, CURLoption o, curl_write_callback cb) { return curl_easy_setopt(h, o, cb); }
static inline CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_getinfo_ptr(CURL *h, CURLINFO i, void *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLMcode ccurl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
/// Every socket libcurl opens is close-on-exec, so no child process (the test sandbox, webhooks' helpers)
/// inherits a kept-alive connection to Prefect or a model provider.
static inline int ccurl_cloexec_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose) {
    (void)clientp; (void)purpose;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return CURL_SOCKOPT_ERROR;
    return CURL_SOCKOPT_OK;
}
static inline CURLcode ccurl_setopt_cloexec_sockets(CURL *h) {
    return curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, ccurl_cloexec_sockopt);
}
/// The CURLMsg union read as a result code (CURLMSG_DONE).
static inline CURLcode ccurl_msg_result(const CURLMsg *msg) { return msg->data.result; }
#endif
