"""Each of our platform plugins loads alone and in any order (issue 28: the math every platform shares is a static
library linked into each plugin, so no plugin needs another of ours).

    plugins_load_alone.py <openmm plugin folder> <model.enn> <libOpenMMENN<Platform>.so> ...

Checks, each in a fresh process whose OPENMM_PLUGIN_DIR holds OpenMM's own plugins and none of ours:
- the shared libraries each plugin needs (ELF DT_NEEDED, by `readelf -d`) name no other plugin of ours;
- each plugin, loaded alone, registers ENNForce's kernel on its platform only, and a Context evaluates a molecule there;
- all of them loaded in one order and in the reverse order give each platform's energy bitwise as when it was alone,
  and each platform runs its own plugin's kernel (the energies of Reference, CPU and OpenCL differ in their last bits).
Exit status 0 on success; messages go to stdout.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

PLATFORM_OF = {"Reference": "Reference", "CPU": "CPU", "OpenCL": "OpenCL", "CUDA": "CUDA"}

# Run in a child process: load the plugins named on the command line, in that order, and report per platform.
CHILD = r"""
import json, sys
import numpy as np
import openmm
import openmmenn
model, plugins = sys.argv[1], sys.argv[2:]
for plugin in plugins:
    openmm.Platform.loadPluginLibrary(plugin)
numbers = [6, 6, 8, 7, 1, 1, 1, 1, 1]
positions = np.array([[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.15, 1.05, 0.0], [2.2, -1.15, 0.0], [-0.4, 1.0, 0.1],
                      [-0.35, -0.55, 0.88], [-0.38, -0.5, -0.9], [3.2, -1.1, 0.05], [1.75, -2.05, 0.0]]) * 0.1
report = {}
for i in range(openmm.Platform.getNumPlatforms()):
    platform = openmm.Platform.getPlatform(i)
    entry = {"registered": platform.supportsKernels(["CalcENNForce"])}
    if entry["registered"] and platform.getName() != "CUDA":
        system = openmm.System()
        force = openmmenn.ENNForce(model)
        for z in numbers:
            force.addParticle(system.addParticle(1.0), z)
        system.addForce(force)
        properties = {"Precision": "double"} if platform.getName() == "OpenCL" else {}
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, properties)
        context.setPositions(positions)
        entry["energy"] = context.getState(getEnergy=True).getPotentialEnergy()._value
    report[platform.getName()] = entry
print("REPORT " + json.dumps(report))
"""


def platform_of(plugin):
    match = re.search(r"libOpenMMENN(\w+)\.so$", os.path.basename(plugin))
    return PLATFORM_OF[match.group(1)]


def needed_libraries(plugin):
    dynamic = subprocess.run(["readelf", "-d", plugin], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)


def run(openmm_only_dir, model, plugins):
    env = dict(os.environ, OPENMM_PLUGIN_DIR=openmm_only_dir)
    result = subprocess.run([sys.executable, "-c", CHILD, model] + plugins, capture_output=True, text=True, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"loading {plugins} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(lines[0][len("REPORT "):])


def main(openmm_plugin_dir, model, plugins):
    failures = []
    ours = {os.path.basename(p) for p in plugins} | {"libOpenMMENNReference.so", "libOpenMMENNCPU.so",
                                                     "libOpenMMENNOpenCL.so", "libOpenMMENNCUDA.so"}
    for plugin in plugins:
        others = [lib for lib in needed_libraries(plugin) if lib in ours]
        print(f"{os.path.basename(plugin)} needs {needed_libraries(plugin)}")
        if others:
            failures.append(f"{os.path.basename(plugin)} needs other plugins of ours: {others}")
    with tempfile.TemporaryDirectory() as openmm_only:
        for name in os.listdir(openmm_plugin_dir):
            if name.endswith(".so") and "OpenMMENN" not in name:
                os.symlink(os.path.join(openmm_plugin_dir, name), os.path.join(openmm_only, name))
        alone = {}
        for plugin in plugins:
            platform = platform_of(plugin)
            report = run(openmm_only, model, [plugin])
            registered = sorted(name for name, entry in report.items() if entry["registered"])
            print(f"{os.path.basename(plugin)} alone: ENNForce registered on {registered}; energy "
                  f"{report.get(platform, {}).get('energy')} kJ/mol")
            if registered != [platform]:
                failures.append(f"{os.path.basename(plugin)} alone registered ENNForce on {registered}, not [{platform}]")
            alone[platform] = report.get(platform, {}).get("energy")
        if alone.get("Reference") is not None and alone.get("Reference") == alone.get("CPU"):
            failures.append("Reference and CPU give the same energy bitwise: this check cannot tell their kernels apart")
        for order in (plugins, list(reversed(plugins))):
            report = run(openmm_only, model, order)
            for plugin in plugins:
                platform = platform_of(plugin)
                energy = report.get(platform, {}).get("energy")
                if energy != alone[platform]:
                    failures.append(f"loading {[os.path.basename(p) for p in order]}: {platform} energy {energy} kJ/mol, "
                                    f"alone {alone[platform]}")
            print(f"order {[os.path.basename(p) for p in order]}: each platform's energy as when its plugin was alone")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
