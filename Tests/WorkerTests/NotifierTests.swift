import Foundation
import Testing
@testable import Worker

@Suite("Webhook text")
struct NotifierTests {
    /// Slack turns `<!channel>` into a mention and `<https://evil|Approve>` into a link: model text is escaped.
    @Test func slackControlSequencesAreEscaped() {
        #expect(Notifier.slackEscaped("<!channel> <https://evil|Approve> & co") == "&lt;!channel&gt; &lt;https://evil|Approve&gt; &amp; co")
    }
}
