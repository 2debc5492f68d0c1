#!/usr/bin/env python3
"""Writes link/launch.ld, the linker script that places the functions a
launch runs side by side at the start of the binary's code.

Why: the kernel maps a program's code page-cache folio by folio as it
faults, so a launch that touches a few hundred functions spread over 3.6 MB
of code gets most of the binary mapped, and pays for mapping (and at exit
unmapping) every page: that was most of `secret exec`'s resident memory and
a good part of its time (README, "Launch cost"). Placed together, the same
functions fit in a few hundred KB.

How: build an unstripped release binary, run the launches under callgrind
(valgrind), and list every function of `secret` that ran, in first-run
order. Symbol names carry hashes that change with the profile, the crate
versions and the compiler, so each name becomes a glob with those parts
replaced by `*`; the script lists them as input-section patterns (rustc
puts each function in its own `.text.NAME` or, when LLVM deems it cold,
`.text.unlikely.NAME` section) in an output section
inserted before `.text`. A pattern that matches nothing is ignored, so a
stale script costs locality, never a failed build; rerun this after large
changes to the launch path:

    python3 link/launch-order.py

Needs valgrind; takes a minute or two (one release build).
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "launch-order")
OUT = os.path.join(ROOT, "link", "launch.ld")
PASSPHRASE = "launch-order passphrase"

# Code that runs in every launch but never shows in a callgrind trace: the
# vfork child (valgrind runs it as a separate, untraced process).
ALWAYS = [
    "_ZN6secret3sys*",
]


def pattern(name):
    """The glob for one symbol: its hashes and LLVM's numbered clones as `*`."""
    name = re.sub(r"'\d+$", "", name)  # callgrind's recursion marker
    name = re.sub(r"(\.llvm)?\.\d+$", "*", name)
    if name.startswith("_ZN"):
        name = re.sub(r"17h[0-9a-f]{16}E", "17h*E", name)
    elif name.startswith("_R"):
        # v0: crate disambiguators, and back-references whose offsets move
        # with the disambiguators' lengths.
        name = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name)
        name = re.sub(r"B[0-9A-Za-z]*_", "B*_", name)
    return name


def traced_functions(path, seen, order):
    obj = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("fn=") and obj and obj.endswith("/secret"):
                name = line[3:].strip()
                # Not a symbol: an address, or "(below main)".
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.$']*", name):
                    continue
                p = pattern(name)
                if p not in seen:
                    seen.add(p)
                    order.append(p)


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def main():
    env = dict(
        os.environ,
        CARGO_TARGET_DIR=TARGET,
        CARGO_PROFILE_RELEASE_STRIP="false",
        SECRET_NO_LAUNCH_ORDER="1",
    )
    run(["cargo", "build", "--release", "--bin", "secret"], cwd=ROOT, env=env)
    binary = os.path.join(TARGET, "release", "secret")
    seen, order = set(), []
    for p in ALWAYS:
        seen.add(p)
        order.append(p)
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as out:
        os.chmod(home, 0o700)
        env = dict(os.environ, SECRET_HOME=home, SECRET_PASSPHRASE=PASSPHRASE)
        run([binary, "init"], env=env, stdout=subprocess.DEVNULL)
        run([binary, "add", "@k", "--stdin"], env=env, input=b"v", stdout=subprocess.DEVNULL)
        # The key cache lives in this session's keyring: the traced launches
        # below skip Argon2id, as a launch after `secret unlock` does.
        run([binary, "unlock", "--for", "10m"], env=env, stdout=subprocess.DEVNULL)
        del env["SECRET_PASSPHRASE"]
        # A command found through PATH (the usual case) and one by path.
        for mode, command in (([], "true"), (["--exec"], "/bin/true")):
            run(
                [
                    "valgrind", "--tool=callgrind", "--demangle=no",
                    "--compress-strings=no", "--compress-pos=no",
                    # --exec replaces the process: dump before it does.
                    "--dump-before=execve",
                    "--callgrind-out-file=" + os.path.join(out, "cg.%p"),
                    binary, "exec", *mode, "--env", "K=@k", "--", command,
                ],
                env=env, stderr=subprocess.DEVNULL,
            )
        run([binary, "lock"], env=env, stdout=subprocess.DEVNULL)
        for name in sorted(os.listdir(out)):
            traced_functions(os.path.join(out, name), seen, order)
    if len(order) < 100:
        sys.exit(f"only {len(order)} functions traced: is valgrind working?")
    with open(OUT, "w") as f:
        f.write("/* Generated by link/launch-order.py: the functions a launch runs, first\n")
        f.write("   run first, placed together (see that script for why). */\n")
        f.write("SECTIONS\n{\n  .text.launch : {\n")
        for p in order:
            # LLVM puts the functions it deems cold in `.text.unlikely.NAME`.
            f.write(f"    *(.text.{p} .text.unlikely.{p})\n")
        f.write("  }\n}\nINSERT BEFORE .text;\n")
    print(f"{OUT}: {len(order)} patterns")


if __name__ == "__main__":
    main()
