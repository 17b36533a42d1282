"""The Python side of scripts/bench: five trivial tasks, optionally pausing or suspending for input
after the second, as Prefect's own docs do it. Deployed to a `process` work pool."""
from prefect import flow, task, pause_flow_run, suspend_flow_run
from prefect.input import RunInput


class Approval(RunInput):
    choice: str = "approve"


@task
def stage(name: str, after: str = "") -> str:
    return name


@flow(name="bench-python")
def bench(mode: str = "none") -> None:
    prev = ""
    for name in ["bootstrap", "design", "implement", "test", "verify"]:
        prev = stage(name, prev)
        if name == "design" and mode == "pause":
            pause_flow_run(wait_for_input=Approval, timeout=3600)
        elif name == "design" and mode == "suspend":
            suspend_flow_run(wait_for_input=Approval, timeout=None)
