#!/usr/bin/env python3
"""Draws docs/performance.png from the rows `switchboard-bench sweep` appends to a CSV
(subject,key,clients,value): direct messages a second and the time of N logins one
after another, against the number of clients, for the server and the null relay.

    python3 bench/plot.py [docs/performance-sweep.csv] [docs/performance.png]

Needs matplotlib (`pip install matplotlib`).
"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


# Subjects as the CSV names them: `sweep` writes Server and Relay; rows of a later sitting
# are appended renamed. Drawn: the sitting that set the targets (Server, Relay) and the
# latest one (ServerNow, RelayNow, 2026-12-06); the first sitting after the
# optimisations (ServerAfter, RelayAfter) stays in the CSV for the record, undrawn.
SUBJECTS = (
    ("Server", "o-", "tab:gray", "switchboard, 2026-12-05 (before)"),
    ("Relay", "s:", "tab:gray", "null relay, same sitting"),
    ("ServerNow", "o-", "tab:blue", "switchboard, 2026-12-06"),
    ("RelayNow", "s:", "tab:blue", "null relay, same sitting"),
)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "docs/performance-sweep.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/performance.png"
    # (key, subject) -> {clients: [values]}; repeated runs are averaged.
    series = defaultdict(lambda: defaultdict(list))
    with open(src, newline="") as f:
        for subject, key, clients, value in csv.reader(f):
            series[(key, subject)][int(clients)].append(float(value))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        (left, "direct.msgs_per_s", "direct messages/s (pairs, full speed)", 1e-3, "thousand msgs/s"),
        (right, "logins.total_s", "N logins one after another (each announced)", 1.0, "seconds"),
    ]
    for ax, key, title, scale, unit in panels:
        counts = set()
        for subject, style, color, label in SUBJECTS:
            points = series.get((key, subject))
            if not points:
                continue
            xs = sorted(points)
            ys = [sum(points[x]) / len(points[x]) * scale for x in xs]
            ax.plot(xs, ys, style, color=color, label=label)
            counts.update(xs)
        ax.set_title(title)
        ax.set_xlabel("clients")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        ax.legend()
    right.set_xscale("log")
    right.set_yscale("log")
    # The client counts themselves, not a log scale's crowded minor labels.
    right.set_xticks(sorted(counts), [str(c) for c in sorted(counts)])
    right.minorticks_off()
    fig.suptitle("ws2017 on this machine (2 cores, loopback)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
