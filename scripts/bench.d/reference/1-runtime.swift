// scripts/bench reference program 1: the static Swift runtime alone, idle. (Each reference program is linked as
// scripts/package links the worker; they show the floor under the worker's idle memory.)
import Glibc

print("ready")
while true { sleep(3600) }
