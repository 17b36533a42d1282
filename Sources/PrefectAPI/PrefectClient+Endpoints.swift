import Foundation
import HTTP
import JSON

extension PrefectClient {
    // MARK: Server

    /// `GET /health` → true when the server answers.
    public func health() async throws -> Bool {
        let response = try await call(.get, "/health")
        return response.text.trimmingWhitespace() == "true"
    }

    /// The server's Prefect version, e.g. `3.9.1`.
    public func serverVersion() async throws -> String {
        try decode(String.self, try await call(.get, "/admin/version"), "/admin/version")
    }

    // MARK: Work pools and workers

    /// The pool, or nil when it does not exist.
    public func readWorkPool(name: String) async throws -> WorkPool? {
        let response = try await call(.get, "/work_pools/\(Self.segment(name))", allow: [404])
        if response.status == 404 { return nil }
        return try decode(WorkPool.self, response, "/work_pools/{name}")
    }

    /// Creates a pool; a 409 (already exists) is thrown as `.conflict`.
    public func createWorkPool(_ pool: WorkPoolCreate) async throws -> WorkPool {
        try decode(WorkPool.self, try await call(.post, "/work_pools/", body: encode(pool)), "/work_pools/")
    }

    public func updateWorkPool(name: String, baseJobTemplate: JSONValue) async throws {
        let body: JSONValue = ["base_job_template": baseJobTemplate]
        try await call(.patch, "/work_pools/\(Self.segment(name))", body: encode(body))
    }

    public func heartbeat(pool: String, worker: String, interval: Duration) async throws {
        let body: JSONValue = ["name": .string(worker), "heartbeat_interval_seconds": .int(Int(interval.seconds.rounded(.up)))]
        try await call(.post, "/work_pools/\(Self.segment(pool))/workers/heartbeat", body: encode(body))
    }

    public func workers(pool: String) async throws -> [Worker] {
        let response = try await call(.post, "/work_pools/\(Self.segment(pool))/workers/filter", body: Data("{}".utf8))
        return try decode([Worker].self, response, "/workers/filter")
    }

    /// The runs a worker of `pool` may claim (Scheduled, Late, Resuming, AwaitingRetry …) due before
    /// `before`. Claims nothing; the pool's concurrency limit is applied by the server.
    /// `after` (inclusive) pages on through a backlog: the server orders by `next_scheduled_start_time`.
    public func scheduledFlowRuns(pool: String, queues: [String] = [], before: Date, after: Date? = nil, limit: Int? = nil) async throws -> [WorkerFlowRunResponse] {
        var body: [String: JSONValue] = ["scheduled_before": .string(JSONCoding.formatTimestamp(before))]
        if let after { body["scheduled_after"] = .string(JSONCoding.formatTimestamp(after)) }
        if !queues.isEmpty { body["work_queue_names"] = .array(queues.map { .string($0) }) }
        if let limit { body["limit"] = .int(limit) }
        let path = "/work_pools/\(Self.segment(pool))/get_scheduled_flow_runs"
        return try decode([WorkerFlowRunResponse].self, try await call(.post, path, body: encode(JSONValue.object(body))), path)
    }

    // MARK: Flows and deployments

    /// Creates the flow, or returns the existing one of that name.
    public func createFlow(name: String) async throws -> Flow {
        let body: JSONValue = ["name": .string(name)]
        return try decode(Flow.self, try await call(.post, "/flows/", body: encode(body)), "/flows/")
    }

    public func readFlow(name: String) async throws -> Flow? {
        let response = try await call(.get, "/flows/name/\(Self.segment(name))", allow: [404])
        return response.status == 404 ? nil : try decode(Flow.self, response, "/flows/name")
    }

    /// Creates or updates (on flow id + name) a deployment.
    public func upsertDeployment(_ deployment: DeploymentCreate) async throws -> Deployment {
        try decode(Deployment.self, try await call(.post, "/deployments/", body: encode(deployment)), "/deployments/")
    }

    /// `PATCH /deployments/{id}` with only the given fields.
    public func updateDeployment(id: String, _ fields: [String: JSONValue]) async throws {
        _ = try await call(.patch, "/deployments/\(id)", body: encode(JSONValue.object(fields)))
    }

    public func readDeployment(id: String) async throws -> Deployment? {
        let response = try await call(.get, "/deployments/\(id)", allow: [404])
        return response.status == 404 ? nil : try decode(Deployment.self, response, "/deployments/{id}")
    }

    public func readDeployment(flowName: String, name: String) async throws -> Deployment? {
        let response = try await call(.get, "/deployments/name/\(Self.segment(flowName))/\(Self.segment(name))", allow: [404])
        return response.status == 404 ? nil : try decode(Deployment.self, response, "/deployments/name")
    }

    /// What `prefect deployment run` calls. Parameter errors come back as `.invalid` with the server's reason.
    public func createFlowRun(deploymentID: String, _ run: DeploymentFlowRunCreate) async throws -> FlowRun {
        do {
            let path = "/deployments/\(deploymentID)/create_flow_run"
            return try decode(FlowRun.self, try await call(.post, path, body: encode(run)), path)
        } catch var error as PrefectError where error.code == .conflict {
            error.code = .invalid  // the server says 409 for a parameter that fails the schema
            throw error
        }
    }

    // MARK: Flow runs

    public func createFlowRun(_ run: FlowRunCreate) async throws -> FlowRun {
        try decode(FlowRun.self, try await call(.post, "/flow_runs/", body: encode(run)), "/flow_runs/")
    }

    /// Every state the run has been in (`GET /flow_run_states/?flow_run_id=`), in the server's order.
    public func flowRunStates(flowRunID: String) async throws -> [State] {
        let path = "/flow_run_states/?flow_run_id=\(flowRunID)"
        return try decode([State].self, try await call(.get, path), "/flow_run_states/")
    }

    public func taskRunStates(taskRunID: String) async throws -> [State] {
        let path = "/task_run_states/?task_run_id=\(taskRunID)"
        return try decode([State].self, try await call(.get, path), "/task_run_states/")
    }

    public func readFlowRun(id: String) async throws -> FlowRun {
        try decode(FlowRun.self, try await call(.get, "/flow_runs/\(id)"), "/flow_runs/{id}")
    }

    public func filterFlowRuns(_ filter: FlowRunFilter) async throws -> [FlowRun] {
        try decode([FlowRun].self, try await call(.post, "/flow_runs/filter", body: encode(filter.body)), "/flow_runs/filter")
    }

    /// Every run the filter matches, page by page (the server answers at most `pageSize` at a time), sorted by id;
    /// a run that moves between pages while they are read is listed once.
    public func filterAllFlowRuns(_ filter: FlowRunFilter, pageSize: Int = 200) async throws -> [FlowRun] {
        var page = filter
        page.limit = pageSize
        page.sort = filter.sort ?? "ID_DESC"
        var runs: [FlowRun] = []
        var seen = Set<String>()
        for n in 0..<500 {
            page.offset = n * pageSize
            let batch = try await filterFlowRuns(page)
            for run in batch where seen.insert(run.id).inserted { runs.append(run) }
            if batch.count < pageSize { break }
        }
        return runs
    }

    public func updateFlowRun(id: String, _ update: FlowRunUpdate) async throws {
        try await call(.patch, "/flow_runs/\(id)", body: encode(update))
    }

    public func updateLabels(flowRunID: String, _ labels: [String: String]) async throws {
        try await call(.patch, "/flow_runs/\(flowRunID)/labels", body: encode(labels))
    }

    /// Proposes a state. The proposal carries a fresh `transition_id` unless one is set, and the HTTP
    /// retries resend the very same body, so a retried proposal is never applied twice.
    ///
    /// When the server committed a proposal but its answer was lost, the retry is REJECTed "already made this
    /// state transition" with the current state: that state is ours, so the answer is ACCEPT (as Prefect's
    /// client decides from the returned state, not from the status).
    public func setFlowRunState(id: String, _ state: StateCreate, force: Bool = false) async throws -> OrchestrationResult {
        var state = state
        state.stateDetails.flowRunID = id
        return try await propose(state, force: force, path: "/flow_runs/\(id)/set_state")
    }

    private func propose(_ state: StateCreate, force: Bool, path: String, fresh: Bool = false) async throws -> OrchestrationResult {
        var state = state
        if state.stateDetails.transitionID == nil { state.stateDetails.transitionID = UUID().uuidString.lowercased() }
        let body: JSONValue = ["state": try JSONValue.from(state), "force": .bool(force)]
        return try decode(OrchestrationResponse.self, try await call(.post, path, body: encode(body), fresh: fresh), path).result.settled(proposing: state)
    }

    /// Proposes a state and, while the server answers WAIT (e.g. Running before the scheduled time),
    /// sleeps `delay_seconds` (at most `maxWait` at a time) and proposes again. Never returns `.wait`.
    public func proposeFlowRunState(id: String, _ state: StateCreate, force: Bool = false, maxWait: Duration = .seconds(30)) async throws -> OrchestrationResult {
        try await proposeUntilNotWaiting(maxWait: maxWait) { try await self.setFlowRunState(id: id, state, force: force) }
    }

    /// The task-run counterpart of `proposeFlowRunState`.
    public func proposeTaskRunState(id: String, _ state: StateCreate, force: Bool = false, maxWait: Duration = .seconds(30)) async throws -> OrchestrationResult {
        try await proposeUntilNotWaiting(maxWait: maxWait) { try await self.setTaskRunState(id: id, state, force: force) }
    }

    /// The shortest wait after a WAIT answer.
    static let minimumWait: Duration = .milliseconds(500)

    private func proposeUntilNotWaiting(maxWait: Duration, _ propose: () async throws -> OrchestrationResult) async throws -> OrchestrationResult {
        while true {
            let result = try await propose()  // each proposal gets its own transition id: a WAIT applied nothing
            guard case .wait(let delay, _) = result else { return result }
            // The server may say 0 s (a tag limit's jittered delay rounds to 0): never a tight loop against it.
            try await Task.sleep(for: min(max(.milliseconds(Int64(delay * 1000)), Self.minimumWait), maxWait))
        }
    }

    /// What the UI's Resume button calls; the server validates `runInput` against the stored schema.
    public func resumeFlowRun(id: String, runInput: JSONValue?) async throws -> OrchestrationResult {
        let body: JSONValue = runInput.map { ["run_input": $0] } ?? [:]
        let path = "/flow_runs/\(id)/resume"
        return try decode(OrchestrationResponse.self, try await call(.post, path, body: encode(body)), path).result
    }

    public func graph(flowRunID: String) async throws -> JSONValue {
        try decode(JSONValue.self, try await call(.get, "/flow_runs/\(flowRunID)/graph-v2"), "/graph-v2")
    }

    // MARK: Flow-run inputs

    /// Stores `value` (JSON text) under `key`; a 409 (key exists) is thrown as `.conflict`.
    public func createInput(flowRunID: String, key: String, value: String) async throws {
        let body: JSONValue = ["key": .string(key), "value": .string(value)]
        try await call(.post, "/flow_runs/\(flowRunID)/input", body: encode(body))
    }

    /// The stored JSON text, or nil when there is none.
    public func readInput(flowRunID: String, key: String) async throws -> String? {
        let response = try await call(.get, "/flow_runs/\(flowRunID)/input/\(Self.segment(key))", allow: [404])
        return response.status == 404 ? nil : response.text
    }

    public func filterInputs(flowRunID: String, prefix: String, limit: Int = 100) async throws -> [FlowRunInput] {
        let body: JSONValue = ["prefix": .string(prefix), "limit": .int(limit), "exclude_keys": []]
        let path = "/flow_runs/\(flowRunID)/input/filter"
        return try decode([FlowRunInput].self, try await call(.post, path, body: encode(body)), path)
    }

    public func deleteInput(flowRunID: String, key: String) async throws {
        try await call(.delete, "/flow_runs/\(flowRunID)/input/\(Self.segment(key))", allow: [404])
    }

    // MARK: Task runs

    /// Creates a task run; idempotent on (flow run, task key, dynamic key): the existing one comes back.
    public func createTaskRun(_ run: TaskRunCreate) async throws -> TaskRun {
        try decode(TaskRun.self, try await call(.post, "/task_runs/", body: encode(run)), "/task_runs/")
    }

    public func filterTaskRuns(flowRunID: String) async throws -> [TaskRun] {
        let body: JSONValue = ["flow_runs": ["id": ["any_": [.string(flowRunID)]]], "sort": "EXPECTED_START_TIME_ASC"]
        return try decode([TaskRun].self, try await call(.post, "/task_runs/filter", body: encode(body)), "/task_runs/filter")
    }

    /// Task runs have no duplicate-transition rule (only flow runs have `PreventDuplicateTransitions`): a proposal
    /// resent after its answer was lost is applied again (a second Running is a rerun, `run_count` 2). So a proposal
    /// that got no answer is never resent blindly: the task run is read first, and when its state carries this
    /// proposal's `transition_id` the server committed it, which is an ACCEPT.
    public func setTaskRunState(id: String, _ state: StateCreate, force: Bool = false) async throws -> OrchestrationResult {
        var state = state
        state.stateDetails.taskRunID = id
        if state.stateDetails.transitionID == nil { state.stateDetails.transitionID = UUID().uuidString.lowercased() }
        let policy = configuration.retry ?? http.configuration.retry
        var once = policy
        once.retryTransportErrors = false
        let single = with(retry: once)
        var attempt = 0
        while true {
            do {
                // On a new connection: libcurl would resend it by itself if a kept-alive one died before the answer.
                return try await single.propose(state, force: force, path: "/task_runs/\(id)/set_state", fresh: true)
            } catch let error as PrefectError where error.underlying?.isRetryable == true && policy.retryTransportErrors && attempt < policy.maxTransportRetries {
                // Only a transport failure (the proposal may have reached the server) is looked up and retried; a client
                // that was shut down, or any answer, ends here.
                attempt += 1
                try await Task.sleep(for: policy.delay(attempt: attempt, retryAfter: nil))
                if let current = try? await single.readTaskRun(id: id).state, current.stateDetails?.transitionID == state.stateDetails.transitionID {
                    return .accept(current)
                }
            }
        }
    }

    public func readTaskRun(id: String) async throws -> TaskRun {
        try decode(TaskRun.self, try await call(.get, "/task_runs/\(id)"), "/task_runs/{id}")
    }

    // MARK: Logs, artifacts, events

    public func createLogs(_ logs: [LogCreate]) async throws {
        guard !logs.isEmpty else { return }
        try await call(.post, "/logs/", body: encode(logs))
    }

    public func readLogs(flowRunID: String, limit: Int = 200) async throws -> [LogEntry] {
        let limit = min(limit, 200)  // the server's maximum
        let body: JSONValue = ["logs": ["flow_run_id": ["any_": [.string(flowRunID)]]], "sort": "TIMESTAMP_ASC", "limit": .int(limit)]
        return try decode([LogEntry].self, try await call(.post, "/logs/filter", body: encode(body)), "/logs/filter")
    }

    @discardableResult
    public func createArtifact(_ artifact: ArtifactCreate) async throws -> Artifact {
        try decode(Artifact.self, try await call(.post, "/artifacts/", body: encode(artifact)), "/artifacts/")
    }

    /// `PATCH /artifacts/{id}` with new `data` (how a progress artifact moves, as Prefect's update_progress_artifact does).
    /// A progress artifact set to `percent` with `note`: the one `id` names, else a new one (its id is returned).
    public func progress(id: String?, key: String?, flowRunID: String?, percent: Double, note: String) async throws -> String {
        if let id {
            try await updateArtifact(id: id, data: .double(percent), description: note)
            return id
        }
        return try await createArtifact(.progress(key: key, percent: percent, description: note, flowRunID: flowRunID)).id
    }

    public func updateArtifact(id: String, data: JSONValue, description: String? = nil) async throws {
        var body: [String: JSONValue] = ["data": data]
        if let description { body["description"] = .string(description) }
        _ = try await call(.patch, "/artifacts/\(id)", body: encode(JSONValue.object(body)))
    }

    public func artifacts(flowRunID: String) async throws -> [Artifact] {
        let body: JSONValue = ["artifacts": ["flow_run_id": ["any_": [.string(flowRunID)]]], "sort": "CREATED_DESC"]
        return try decode([Artifact].self, try await call(.post, "/artifacts/filter", body: encode(body)), "/artifacts/filter")
    }

    public func emitEvents(_ events: [Event]) async throws {
        guard !events.isEmpty else { return }
        try await call(.post, "/events", body: encode(events))
    }
}
