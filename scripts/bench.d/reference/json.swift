// scripts/bench reference programs 3 and 4: program 2 and JSON. 3-foundation: through the full Foundation, which the
// worker links because Yams (the YAML reader over libyaml the project uses) imports it; 4-essentials (built with
// -D ESSENTIALS): FoundationEssentials only, what the worker could link without Yams. No dates, no Calendar. Then idle.
#if ESSENTIALS
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

@_silgen_name("curl_global_init") func curl_global_init(_ flags: Int) -> Int32
precondition(curl_global_init(3) == 0)
struct Run: Codable { var id: String; var name: String; var labels: [String: String] }
let runs = [Run(id: "0b8c6f7e-1d0b-4f8e-9a3e-2f1c3d4e5f60", name: "a-run", labels: ["prefect.worker.name": "w"])]
let data = try JSONEncoder().encode(runs)
let decoded = try JSONDecoder().decode([Run].self, from: data)
precondition(decoded.count == 1)
print("ready")
while true { sleep(3600) }
