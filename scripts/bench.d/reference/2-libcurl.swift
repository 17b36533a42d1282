// scripts/bench reference program 2: + Debian's libcurl, initialised as the worker does (curl_global_init also
// initialises OpenSSL), idle.
import Glibc

@_silgen_name("curl_global_init") func curl_global_init(_ flags: Int) -> Int32
precondition(curl_global_init(3) == 0)  // CURL_GLOBAL_ALL
print("ready")
while true { sleep(3600) }
