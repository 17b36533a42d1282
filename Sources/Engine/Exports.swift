// The build's vocabulary (stage names, token usage and estimates, SHA-256) lives in `Core`, below both `Engine` and
// `LLM`; whoever imports Engine sees it too.
@_exported import Core
