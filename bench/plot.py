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
# (after a change) are appended renamed to ServerAfter and RelayAfter.
SUBJECTS = (
    ("Server", "o-", "switchboard (before)"),
    ("Relay", "s--", "null relay (same sitting)"),
    ("ServerAfter", "o-", "switchboard (after)"),
    ("RelayAfter", "s:", "null relay (same sitting)"),
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
        for subject, style, label in SUBJECTS:
            points = series.get((key, subject))
            if not points:
                continue
            xs = sorted(points)
            ys = [sum(points[x]) / len(points[x]) * scale for x in xs]
            ax.plot(xs, ys, style, label=label)
        ax.set_title(title)
        ax.set_xlabel("clients")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        ax.legend()
    right.set_xscale("log")
    right.set_yscale("log")
    fig.suptitle("ws2017 on this machine (2 cores, loopback)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
