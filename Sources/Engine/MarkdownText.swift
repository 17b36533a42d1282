import Foundation

/// Text that a model or model-written code produced, made safe to show in the Prefect UI, which renders Markdown
/// (artifacts, the Resume form's description; in the v1 UI even table cells). Rendered model text must not fetch
/// anything (`![](http://host/pixel?leak=…)` is fetched by the browser without a click: a way out of the sandbox
/// with no network) nor link anywhere; a link is only where the worker built it.
public enum MarkdownText {
    /// Model Markdown that keeps its headings, lists, emphasis and code, but can neither embed nor link: outside code,
    /// `[`, `]` and `<` are escaped (no image, link, reference or HTML) and so are the starts of autolinks
    /// (`://`, `www.`, `@`); code blocks and code spans stay as they are (Markdown renders nothing inside them).
    public static func neutralized(_ text: String) -> String {
        var out: [String] = []
        var fence: (character: Character, length: Int)?
        for line in text.components(separatedBy: "\n") {
            let trimmed = line.drop { $0 == " " }
            let indent = line.count - trimmed.count
            if indent <= 3, let first = trimmed.first, first == "`" || first == "~" {
                let run = trimmed.prefix { $0 == first }.count
                if let open = fence {
                    if first == open.character, run >= open.length, trimmed.dropFirst(run).allSatisfy({ $0 == " " }) { fence = nil }
                    out.append(line)
                    continue
                }
                if run >= 3, !(first == "`" && trimmed.dropFirst(run).contains("`")) {
                    fence = (first, run)
                    // The info string is text the renderer may show: plain.
                    out.append(String(line.prefix(indent + run)) + plain(String(trimmed.dropFirst(run))))
                    continue
                }
            }
            out.append(fence == nil ? neutralizedLine(line) : line)
        }
        return out.joined(separator: "\n")
    }

    /// One line outside code blocks: code spans kept, everything else escaped.
    static func neutralizedLine(_ line: String) -> String {
        let characters = Array(line)
        var result = ""
        var i = 0
        while i < characters.count {
            if characters[i] == "`" {
                let run = characters[i...].prefix { $0 == "`" }.count
                // A code span: the next run of exactly as many backticks on this line closes it.
                var j = i + run
                var close: Int?
                while j < characters.count {
                    if characters[j] == "`" {
                        let other = characters[j...].prefix { $0 == "`" }.count
                        if other == run {
                            close = j
                            break
                        }
                        j += other
                    } else {
                        j += 1
                    }
                }
                if let close {
                    result += String(characters[i..<(close + run)])
                    i = close + run
                    continue
                }
                result += String(repeating: "\\`", count: run)
                i += run
                continue
            }
            if characters[i] == ":", i + 2 < characters.count, characters[i + 1] == "/", characters[i + 2] == "/" {
                result += ":\\/\\/"
                i += 3
                continue
            }
            result += escaped(characters, at: i)
            i += 1
        }
        return result
    }

    static func escaped(_ characters: [Character], at i: Int) -> String {
        let c = characters[i]
        switch c {
        case "[", "]", "\\": return "\\" + String(c)
        case "<": return "&lt;"
        case "@": return "\\@"
        case "." where i >= 3 && String(characters[(i - 3)..<i]).lowercased() == "www": return "\\."
        default: return String(c)
        }
    }

    /// Text to show as itself, in one line: every Markdown character escaped, line breaks as spaces (table cells,
    /// headings built from a path, a fence's info string).
    public static func plain(_ text: String) -> String {
        var result = ""
        for c in text {
            switch c {
            case "\n", "\r", "\t": result += " "
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "&": result += "&amp;"
            case "\\", "`", "*", "_", "{", "}", "[", "]", "(", ")", "#", "+", "-", ".", "!", "|", "~", "@", ":", "/", "=", "\"", "'": result += "\\" + String(c)
            default: result.append(c)
            }
        }
        return result
    }

    /// A table cell's text (test names that model-written code printed, file names it chose): what Markdown would
    /// turn into an image, a link, an autolink or HTML (the v1 UI renders cells as Markdown) is broken by a zero-width
    /// space, which the v2 UI's plain cells do not show; line breaks become spaces.
    public static func cell(_ text: String) -> String {
        let zwsp: Character = "\u{200B}"
        let characters = Array(text)
        var result = ""
        for (i, c) in characters.enumerated() {
            let next = i + 1 < characters.count ? characters[i + 1] : nil
            switch c {
            case "\n", "\r", "\t":
                result.append(" ")
            case "!" where next == "[", "]" where next == "(" || next == "[" || next == ":":
                result.append(c)
                result.append(zwsp)
            case "<" where next.map { $0.isLetter || "/!?".contains($0) } ?? false:
                result.append(c)
                result.append(zwsp)
            case ":" where next == "/":
                result.append(c)
                result.append(zwsp)
            case "@":
                result.append(zwsp)
                result.append(c)
            case "." where i >= 3 && String(characters[(i - 3)..<i]).lowercased() == "www":
                result.append(zwsp)
                result.append(c)
            default:
                result.append(c)
            }
        }
        return result
    }

    /// `text` as a fenced code block whose fence is longer than any run of backticks inside, so nothing in the text
    /// can end it.
    public static func fenced(_ text: String) -> String {
        var longest = 0
        var run = 0
        for c in text {
            run = c == "`" ? run + 1 : 0
            longest = max(longest, run)
        }
        let fence = String(repeating: "`", count: max(3, longest + 1))
        return fence + "\n" + text + (text.hasSuffix("\n") ? "" : "\n") + fence
    }
}
