import CCurl
import Foundation
import JSON

/// One transfer's libcurl setup and its result: the easy handle's options, its callbacks, and how a finished
/// transfer becomes a response or an `HTTPError`. Only ever touched on the curl thread (see `CurlMulti`).
extension CurlMulti {
    /// Per-transfer storage, only touched on the curl thread.
    final class Transfer {
        let job: Job
        let easy: UnsafeMutableRawPointer
        var body = Data()
        /// Set when the body passed `maxResponseBytes`; the transfer was aborted there.
        var tooLarge = false
        var limit = Int.max
        /// Bytes handed to `onBody` so far (they count against the cap too).
        var streamed = 0
        /// When anything (a header line, body bytes) last arrived: the inactivity timeout's clock.
        var lastActivity = ContinuousClock.now
        var headerLines: [String] = []
        var headerList: UnsafeMutablePointer<curl_slist>?
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

        init(job: Job, easy: UnsafeMutableRawPointer) {
            self.job = job
            self.easy = easy
            errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        }

        deinit {
            curl_slist_free_all(headerList)
            errorBuffer.deallocate()
        }
    }

    func configure(_ transfer: Transfer) -> HTTPError? {
        let easy = transfer.easy
        let request = transfer.job.request
        let unmanaged = Unmanaged.passUnretained(transfer).toOpaque()
        var failed: CURLcode = CURLE_OK
        func check(_ code: CURLcode) { if code != CURLE_OK && failed == CURLE_OK { failed = code } }

        check(request.url.withCString { ccurl_setopt_ptr(easy, CURLOPT_URL, $0) })
        check(ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        if request.freshConnection { check(ccurl_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1)) }
        check(ccurl_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS)))
        check(ccurl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout.seconds * 1000)))
        if request.inactivityTimeout != nil {
            // A long answer may take minutes; what must not happen is silence (checked by the run loop, which
            // also covers the wait for the first byte, where libcurl's low-speed limit does not apply).
            check(ccurl_setopt_long(easy, CURLOPT_TIMEOUT_MS, 0))
        } else {
            let timeout = request.timeout ?? options.timeout
            check(ccurl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(timeout.seconds * 1000)))
        }
        // TLS verification is always on; a custom CA bundle only adds trust.
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1))
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2))
        if let ca = options.caBundle { check(ca.withCString { ccurl_setopt_ptr(easy, CURLOPT_CAINFO, $0) }) }
        // "" = every encoding libcurl supports (gzip, deflate, br, zstd), decoded transparently.
        check("".withCString { ccurl_setopt_ptr(easy, CURLOPT_ACCEPT_ENCODING, $0) })
        check(options.userAgent.withCString { ccurl_setopt_ptr(easy, CURLOPT_USERAGENT, $0) })
        check(ccurl_setopt_ptr(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer))
        check(ccurl_setopt_cloexec_sockets(easy))
        check(ccurl_setopt_off(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(options.maxResponseBytes)))
        transfer.limit = options.maxResponseBytes
        check(ccurl_setopt_write_cb(easy, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            transfer.lastActivity = .now
            // Returning less than given aborts the transfer (CURLE_WRITE_ERROR): a body is never held past the cap.
            guard transfer.body.count + transfer.streamed + size * count <= transfer.limit else {
                transfer.tooLarge = true
                return 0
            }
            if let onBody = transfer.job.request.onBody {
                var status = 0
                _ = ccurl_getinfo_long(transfer.easy, CURLINFO_RESPONSE_CODE, &status)
                if (200..<300).contains(status) {
                    transfer.streamed += size * count
                    onBody(Data(bytes: data, count: size * count))
                    return size * count
                }
            }
            transfer.body.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: size * count)
            return size * count
        }))
        check(ccurl_setopt_ptr(easy, CURLOPT_WRITEDATA, unmanaged))
        check(ccurl_setopt_write_cb(easy, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            transfer.lastActivity = .now
            let buffer = UnsafeRawBufferPointer(start: data, count: size * count)
            transfer.headerLines.append(String(decoding: buffer, as: UTF8.self))
            return size * count
        }))
        check(ccurl_setopt_ptr(easy, CURLOPT_HEADERDATA, unmanaged))

        switch request.method {
        case .get: check(ccurl_setopt_long(easy, CURLOPT_HTTPGET, 1))
        case .head: check(ccurl_setopt_long(easy, CURLOPT_NOBODY, 1))
        case .post: check(ccurl_setopt_long(easy, CURLOPT_POST, 1))
        case .put, .patch, .delete:
            check(request.method.rawValue.withCString { ccurl_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, $0) })
        }
        if let body = request.body {
            check(ccurl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            check(body.withUnsafeBytes { ccurl_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) })
        } else if request.method == .post {
            check(ccurl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0))
        }
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in request.headers { list = curl_slist_append(list, "\(name): \(value)") }
        list = curl_slist_append(list, "Expect:")
        transfer.headerList = list
        check(ccurl_setopt_ptr(easy, CURLOPT_HTTPHEADER, list))

        if failed != CURLE_OK {
            return HTTPError(
                code: .invalidRequest,
                message: "could not prepare \(request.method.rawValue) request: \(String(cString: curl_easy_strerror(failed)))",
                curlCode: Int(failed.rawValue))
        }
        return nil
    }

    func result(of transfer: Transfer, code: CURLcode) -> Result<HTTPResponse, any Error> {
        let easy = transfer.easy
        if transfer.tooLarge || code == CURLE_FILESIZE_EXCEEDED {
            let url = Self.redactedURL(transfer.job.request.url)
            return .failure(
                HTTPError(
                    code: .responseTooLarge,
                    message: "\(transfer.job.request.method.rawValue) \(url): the response was larger than \(options.maxResponseBytes >= 1 << 20 ? "\(options.maxResponseBytes >> 20) MiB" : "\(options.maxResponseBytes) bytes") and was not read; check that the URL points at the right server",
                    curlCode: Int(code.rawValue)))
        }
        guard code == CURLE_OK else {
            let detail = String(cString: transfer.errorBuffer)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            let kind: HTTPError.Code
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .connect
            case CURLE_OPERATION_TIMEDOUT: kind = .timeout
            case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE,
                CURLE_SSL_CERTPROBLEM:
                kind = .tls
            case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .invalidRequest
            default: kind = .transport
            }
            let url = Self.redactedURL(transfer.job.request.url)
            return .failure(
                HTTPError(
                    code: kind, message: "\(transfer.job.request.method.rawValue) \(url): curl error \(code.rawValue): \(text)",
                    curlCode: Int(code.rawValue)))
        }
        var status = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        var connects = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
        return .success(
            HTTPResponse(
                status: status, headers: Self.parseHeaders(transfer.headerLines), body: transfer.body,
                newConnections: connects))
    }

    /// Headers of the final response only (redirect and 100-continue blocks are dropped).
    static func parseHeaders(_ lines: [String]) -> [String: String] {
        var headers: [String: String] = [:]
        for line in lines {
            if line.hasPrefix("HTTP/") {
                headers.removeAll()
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingWhitespace().lowercased()
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            headers[name] = value
        }
        return headers
    }

    /// Drops any user:password part and the query string, so errors never carry credentials.
    static func redactedURL(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "<invalid URL>" }
        components.user = nil
        components.password = nil
        components.query = nil
        return components.string ?? "<invalid URL>"
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace and newlines (Unicode's), in Swift. Foundation's
    /// `trimmingCharacters(in:)` goes through NSString and CFCharacterSet on Linux; this runs for every header of
    /// every response, the idle worker's polls included.
    public func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
