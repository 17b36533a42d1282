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
        // ProtectHome=yes hides /home, /root and /run/user: a project kept there needs them read-only instead.
        let underHome = ["/home/", "/root/", "/run/user/"].contains { workingDirectory.hasPrefix($0) || configFile.hasPrefix($0) }
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
            # State (runs, TRACE.json, the trace key) under /var/lib/autonomy, owned by the service's user,
            # 0700 (UMask and the worker's own umask). This overrides state_dir in config.yml.
            StateDirectory=autonomy
            StateDirectoryMode=0700
            Environment=AUTONOMY_STATE_DIR=%S/autonomy
            \(user.map { "User=\($0)\n" } ?? "DynamicUser=yes\n")WatchdogSec=\(watchdog)
            Restart=on-failure
            RestartSec=5
            RestartPreventExitStatus=64 77
            TimeoutStopSec=\(stopTimeout)
            KillMode=mixed
            KillSignal=SIGTERM

            # Hardening (systemd-analyze security: 2.5). The test stage runs model-written code under bubblewrap,
            # which needs user, PID, network, mount, IPC and UTS namespaces and the mount, umount2,
            # pivot_root and capset calls; nothing else is added for it, and the tests inherit this filter.
            # Delegate=yes (and so ProtectControlGroups=no) lets the worker give each test run a cgroup of its
            # own below the unit's, whose memory limit counts the test's tmpfs pages too.
            # Off on purpose, because bubblewrap cannot mount its /proc under them: ProtectKernelTunables and
            # ProtectKernelLogs (they cover parts of /proc) and ProcSubset=pid (bubblewrap reads /proc/sys/kernel).
            # MemoryDenyWriteExecute is off because JIT runtimes in the tests (node, java) need W+X memory.
            NoNewPrivileges=yes
            ProtectSystem=strict
            PrivateTmp=yes
            PrivateDevices=yes
            PrivateUsers=yes
            ProtectHome=\(underHome ? "read-only" : "yes")
            ProtectHostname=yes
            ProtectClock=yes
            ProtectKernelTunables=no
            ProtectKernelModules=yes
            ProtectKernelLogs=no
            ProtectControlGroups=no
            Delegate=yes
            ProtectProc=invisible
            RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
            RestrictRealtime=yes
            RestrictSUIDSGID=yes
            LockPersonality=yes
            RemoveIPC=yes
            PrivateMounts=yes
            RestrictNamespaces=user pid net mnt ipc uts
            UMask=0077
            CapabilityBoundingSet=
            AmbientCapabilities=
            SystemCallArchitectures=native
            SystemCallErrorNumber=EPERM
            SystemCallFilter=@system-service
            SystemCallFilter=~@cpu-emulation @debug @module @obsolete @raw-io @reboot @swap @privileged @resources
            SystemCallFilter=mount umount2 pivot_root capset
            DevicePolicy=closed
            IPAddressDeny=
            LimitNOFILE=65536

            [Install]
            WantedBy=multi-user.target

            """
    }
}
