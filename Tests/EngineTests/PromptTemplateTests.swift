import Engine
import Testing

@Suite("Prompt templates")
struct PromptTemplateTests {
    @Test func rendersEveryPlaceholder() throws {
        let template = PromptTemplate(file: "t.md", text: "Plan {{ project }} in {{stage}}.\r\nAgain: {{project}} {not one}")
        #expect(try template.placeholders().map(\.name) == ["project", "stage", "project"])
        #expect(try template.render(["project": "textstats", "stage": "design"]) == "Plan textstats in design.\r\nAgain: textstats {not one}")
    }

    /// A combining mark right after `{{` made one Character of it and the brace, so the placeholder was not
    /// seen and went to the model as text; it is now refused like any other bad name.
    @Test func aCombiningMarkCannotHideAPlaceholder() throws {
        let template = PromptTemplate(file: "t.md", text: "line one\r\n{{\u{65B}x}}\n")
        let error = #expect(throws: EngineError.self) { try template.placeholders() }
        #expect(error?.description == "t.md:2: placeholder '{{\u{65B}x}}' must be a name of letters, digits and _")
    }

    @Test func unclosedAndUnknown() throws {
        #expect(throws: EngineError.self) { try PromptTemplate(file: "t.md", text: "{{a\n}}").placeholders() }
        let unknown = #expect(throws: EngineError.self) { try PromptTemplate(file: "t.md", text: "\n{{stag}}").validate(allowed: ["stage"]) }
        #expect(unknown?.description == "t.md:2: unknown placeholder '{{stag}}'; did you mean '{{stage}}'?")
        #expect(throws: EngineError.self) { try PromptTemplate(file: "t.md", text: "{{a}}").render([:]) }
    }
}
