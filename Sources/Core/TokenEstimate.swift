/// A token count estimated from text before a request is sent: 3.5 bytes of UTF-8 a token, rounded up. Source code
/// and English run at 3.5–4.5 bytes a token in the tokenizers of Anthropic's and OpenAI's models, so the estimate
/// errs on the large side: a prompt it lets through fits.
public enum TokenEstimate {
    public static func of(_ text: String) -> Int { of(bytes: text.utf8.count) }
    public static func of(bytes: Int) -> Int { (bytes * 2 + 6) / 7 }
    /// The characters (bytes) `tokens` stand for.
    public static func bytes(_ tokens: Int) -> Int { tokens * 7 / 2 }
}

/// How many tokens a model's context holds (`llm.context_tokens`; these when it is not set). A model the table does
/// not know gets 128,000.
public enum ContextWindow {
    public static let fallback = 128_000

    public static func tokens(model: String) -> Int {
        let m = model.lowercased()
        let table: [(String, Int)] = [
            ("claude", 200_000), ("gpt-4.1", 1_047_576), ("gpt-5", 400_000), ("gpt-4o", 128_000), ("gpt-4-turbo", 128_000),
            ("o1", 200_000), ("o3", 200_000), ("o4", 200_000), ("offline", 200_000), ("replay", 200_000),
        ]
        return table.first { m.hasPrefix($0.0) }?.1 ?? fallback
    }
}
