import Engine
import Foundation
import JSON

/// The template unit `autonomy-worker@.service` (instance = worker name).
public enum SystemdUnit {
    public static let name = "autonomy-worker@.service"

    public static func render(executable: String, configFile: String, settings: Settings, user: String? = nil) -> String {
        let workingDirectory = settings.projectRoot
        let stopTimeout = Int(settings.worker.shutdownGrace.seconds.rounded(.up)) + 30
        let watchdog = max(30, Int((settings.worker.pollInterval.seconds * 20).rounded(.up)))
        return """
            # Autonomy Engine worker (Swift Prefect worker). Instance name = worker name:
            #   systemctl enable --now autonomy-worker@$(hostname)-\(settings.prefect.workPool)
            # Secrets (ANTHROPIC_API_KEY, OPENAI_API_KEY, PREFECT_API_AUTH_STRING, ...) go in the
            # EnvironmentFile, mode 0600, owned by root.
            [Unit]
            Description=Autonomy Engine Prefect worker %i
            Documentation=file://\(workingDirectory)/README.md
            Wants=network-online.target
            After=network-online.target

            [Service]
            Type=notify
            NotifyAccess=main
            ExecStart=\(executable) worker --config \(configFile) --name %i
            WorkingDirectory=\(workingDirectory)
            EnvironmentFile=-/etc/autonomy/%i.env
            \(user.map { "User=\($0)\n" } ?? "DynamicUser=yes\n")WatchdogSec=\(watchdog)
            Restart=on-failure
            RestartSec=5
            RestartPreventExitStatus=64 77
            TimeoutStopSec=\(stopTimeout)
            KillMode=mixed
            KillSignal=SIGTERM

            # Hardening. The test stage's sandbox creates user, PID, network and mount namespaces, so those
            # four stay allowed; PrivateUsers and a filter on @privileged/@resources (setrlimit) stay off.
            NoNewPrivileges=yes
            ProtectSystem=strict
            ReadWritePaths=\(settings.stateDir)
            PrivateTmp=yes
            PrivateDevices=yes
            ProtectHome=yes
            ProtectHostname=yes
            ProtectClock=yes
            ProtectKernelTunables=yes
            ProtectKernelModules=yes
            ProtectKernelLogs=yes
            ProtectControlGroups=yes
            ProtectProc=invisible
            ProcSubset=pid
            RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
            RestrictRealtime=yes
            RestrictSUIDSGID=yes
            LockPersonality=yes
            MemoryDenyWriteExecute=yes
            RemoveIPC=yes
            PrivateMounts=yes
            RestrictNamespaces=user pid net mnt
            UMask=0077
            CapabilityBoundingSet=
            AmbientCapabilities=
            SystemCallArchitectures=native
            SystemCallFilter=@system-service
            SystemCallFilter=~@cpu-emulation @debug @module @obsolete @raw-io @reboot @swap
            DevicePolicy=closed
            IPAddressDeny=
            LimitNOFILE=65536

            [Install]
            WantedBy=multi-user.target

            """
    }
}
