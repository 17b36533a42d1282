import AutonomyFlow
import Engine
import Foundation
import HTTP
import JSON
import LLM
import Logging
import PrefectAPI
import Tasks

/// What one run is built with, resolved once at its start from its parameters, its job variables (the pool's defaults
/// ⊕ the deployment's ⊕ the run's, as Prefect merges them) and config.yml: the project, the provider and model, the
/// sandbox and the test environment. A run that cannot start says why as a `RunEnd` (`Refusal`).
struct RunSettings {
    /// Why the run cannot start, as the ending it gets.
    struct Refusal: Error { let end: RunEnd }

    let params: BuildParameters
    /// The deployment's name, when the run has one that still exists.
    let deploymentName: String?
    let exercise: Exercise?
    /// config.yml's project, or the benchmark exercise's.
    let project: Settings.Project?
    let testEnvironment: [String: String]
    let sandbox: Sandbox
    let providerName: String
    let provider: any LLMProvider
    let model: String
    let maxFixRounds: Int

    /// Reads the run's deployment and pool (their job variables apply to this run) and resolves everything; throws a
    /// `Refusal` before anything is created for the run.
    static func resolve(_ run: FlowRun, settings: Settings, sandbox: Sandbox, client: PrefectClient, http: HTTPClient, log: Logger) async throws -> RunSettings {
        let params: BuildParameters
        do {
            params = try BuildParameters(run.parameters)
        } catch {
            throw Refusal(end: .failed("Invalid parameters: \(error)"))
        }
        // Read at each start (UI edits apply to the next run). Only a deployment or pool that is gone (404) counts as
        // none: a read that fails must not silently drop the run's job variables (it would build with the config's
        // provider instead of the one it asked for).
        let deployment: Deployment?
        let pool: WorkPool?
        do {
            deployment = if let id = run.deploymentID { try await client.readDeployment(id: id) } else { nil }
            pool = try await client.readWorkPool(name: settings.prefect.workPool)
        } catch let error as PrefectError {
            throw Refusal(end: .handedBack("Could not read the run's deployment and work pool (its job variables): \(error.message); handed back for a worker to try again"))
        }
        let jobVariables = JobVariables.merged(poolTemplate: pool?.baseJobTemplate, deployment: deployment?.jobVariables, run: run.jobVariables)
        var testEnvironment = (jobVariables["env"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        let refused = Sandbox.refusedNames(testEnvironment, allowed: settings.test.envAllow)
        if !refused.isEmpty {
            throw Refusal(end: .failed("Refused the job variable env: \(refused.joined(separator: ", ")) \(refused.count == 1 ? "is" : "are") not in test.env_allow. Only names the worker's operator lists in config.yml reach the test command; ask them to add a name, or start the run without it."))
        }
        // A benchmark exercise (autonomy eval) is its own project: its language's toolchain runs its hidden tests.
        let exercise = params.exercise
        if let exercise, let why = Toolchain.unavailable(exercise) {
            throw Refusal(end: .failed("Cannot run the exercise \(exercise.language)/\(exercise.name) on this worker: \(why)."))
        }
        // A project of config.yml (spec, source, its own tests and toolchain) or a folder under templates/inputs/.
        var project = settings.projects[params.project]
        if let exercise, let toolchain = Toolchain.defaults[exercise.language] {
            project = exercise.project(toolchain)
            testEnvironment = toolchain.environment.merging(["EXERCISE": exercise.name]) { own, _ in own }.merging(testEnvironment) { _, run in run }
        }
        let providerName = params.provider ?? jobVariables["provider"]?.stringValue ?? settings.llm.provider
        let provider = try ProviderFactory.make(provider: providerName, settings: settings, http: http, logger: log, reference: exercise?.reference)
        return RunSettings(
            params: params, deploymentName: deployment?.name, exercise: exercise, project: project, testEnvironment: testEnvironment,
            sandbox: sandbox.applying(project), providerName: providerName, provider: provider,
            model: params.model ?? jobVariables["model"]?.stringValue ?? settings.llm.model ?? provider.defaultModel,
            maxFixRounds: exercise.map { $0.tries - 1 } ?? settings.maxFixRounds)
    }

    /// The context of one stage attempt: the run's settings, and `llm.stages.<stage>`'s own model and limits.
    func context(_ stage: StageName, attempt: Int, input: BuildMachine.StageInput, folder: RunFolder, trace: TraceWriter, settings: Settings, log: Logger) -> StageContext {
        var context = StageContext(
            folder: folder, trace: trace, stage: stage, attempt: attempt, project: exercise?.name ?? params.project, templatesDir: settings.templatesDir,
            provider: provider, model: model, maxTokens: settings.llm.maxTokens, prices: settings.llm.prices, feedback: input.feedback,
            testCommand: project?.testCommand ?? settings.test.command, testTimeout: project?.testTimeout ?? settings.test.timeout,
            testEnvironment: testEnvironment, sandbox: sandbox, logger: log)
        context.projectSpec = project?.spec
        context.projectSource = project?.source
        context.task = params.task
        context.exercise = exercise
        context.knownProjects = Array(settings.projects.keys)
        context.junit = project?.junit
        if let patterns = project?.testPatterns { context.testPatterns = patterns }
        context.protectedTests = project?.protectedTests ?? []
        context.hiddenTests = project?.hiddenTests ?? []
        context.modelTests = project?.modelTests ?? true
        // llm.stages.<stage>: a stage's own model and output limit (a cheap verifier, a strong implementer).
        if let own = settings.llm.stages[stage.rawValue] {
            context.model = params.model ?? own.model ?? model
            context.maxTokens = own.maxTokens ?? settings.llm.maxTokens
        }
        context.maxContinuations = settings.llm.maxContinuations
        context.contextTokens = settings.llm.stages[stage.rawValue]?.contextTokens ?? settings.llm.contextTokens ?? ContextWindow.tokens(model: context.model)
        context.maxRequests = settings.llm.maxRequestsPerStage
        context.fixingTests = input.fixingTests
        context.rerunTests = input.testMode == .rerun
        return context
    }
}
