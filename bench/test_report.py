"""Tests of bench/report.py over a small bench/out sample written here:
each report section from known figures, the service section kept, the
chart well-formed, and criterion's estimates collected.

    python3 -m unittest discover -s bench -p 'test_*.py'   (scripts/test.sh runs it)
"""
import json
import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

MIB = 1024 * 1024


def hyperfine_json(rows):
    return {"results": [{"command": n, "command_name": n, "times": [t / 1000 for t in ts],
                         "exit_codes": [0] * len(ts)} for n, ts in rows]}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def sample(out):
    """A bench/out directory with round figures (times in ms)."""
    run = os.path.join(out, "run")
    write(os.path.join(run, "machine.txt"),
          "cpu=Test CPU\ncores=2\nmemory=4 GiB\nkernel=6.1\ncommit=abc1234\nrustc=rustc 1.95.0\n")
    write(os.path.join(run, "startup.json"), json.dumps(hyperfine_json([
        (report.DIRECT, [1.0, 1.0, 1.2]),
        (report.TINI, [1.5, 1.6, 1.7]),
        (report.FILE20, [1.4, 1.5, 1.6]),
        (report.HTTPS20, [6.0, 7.0, 8.0]),
    ])))
    write(os.path.join(run, "probe.tsv"),
          f"{report.DIRECT}\t0\t\n{report.FILE20}\t0\t\ndumb-init\t127\tnot found\n")
    write(os.path.join(run, "rss-startup.tsv"),
          f"{report.FILE20}\t3000 0\n{report.FILE20}\t3100 0\n{report.HTTPS20}\t5000 0\n")
    write(os.path.join(run, "scale.json"), json.dumps(hyperfine_json([
        ("100", [10.0, 11.0, 12.0]), ("200", [20.0, 21.0, 22.0]), ("400", [40.0, 41.0, 42.0]),
    ])))
    # secrets, sealed bytes, exit, error
    write(os.path.join(run, "scale.tsv"),
          f"100\t{2 * MIB}\t0\t\n200\t{4 * MIB}\t0\t\n400\t{8 * MIB}\t70\tagent-init: too big\n")
    # peak RSS in KiB: 2 + 1.5 x bundle MiB, exactly linear
    write(os.path.join(run, "rss-scale.tsv"),
          "100\t5120 0\n200\t8192 0\n400\t14336 70\n")
    write(os.path.join(run, "size.tsv"),
          "target/release/agent-init\t2500000\tstatic-pie\n/usr/bin/tini\t900000\tdynamic\n")
    write(os.path.join(run, "sections.txt"), ".text 1500000\n.rodata 300000\n.tiny 100\n")
    write(os.path.join(out, "criterion.json"), json.dumps([
        {"id": "open/20", "median_ns": 2e6, "ci_lower_ns": 1.9e6, "ci_upper_ns": 2.1e6,
         "throughput": {"Bytes": 2 * MIB}},
    ]))
    write(os.path.join(out, "bloat-crates.txt"), "   Compiling x\n 40.0% std\n")


class Sections(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out")
        sample(self.out)
        self.d = report.Data(self.out)

    def tearDown(self):
        self.tmp.cleanup()

    def test_machine_lists_what_was_recorded_and_only_that(self):
        text = "\n".join(report.section_machine(self.d))
        self.assertIn("| CPU | Test CPU |", text)
        self.assertIn("| commit | abc1234 |", text)
        self.assertNotIn("run at", text)
        self.assertIn("Tools: rustc 1.95.0.", text)

    def test_targets_judge_each_median_against_its_target(self):
        text = "\n".join(report.section_targets(self.d))
        # 1.5 ms over 1.0 ms direct: +0.50, met; 1.5 vs tini's 1.6: met.
        self.assertIn("| +0.50 ms (1.50 vs 1.00 ms) | **met** |", text)
        self.assertIn("1.50 vs 1.60 ms (0.94×, -0.100 ms) | **met** |", text)
        # HTTPS 7 ms against 5: missed.
        self.assertIn("| 7.00 ms | **missed** |", text)
        # RSS at 20 secrets: 3050 KiB median, under 4 MiB.
        self.assertIn("| 2.98 MiB | **met** |", text)
        # 400 x 16 KiB: 14 MiB for an 8 MiB bundle, limit 28 MiB; linear exactly.
        self.assertIn("| 14.00 MiB for a 8.00 MiB bundle (limit 28.00 MiB) | **met** |", text)
        self.assertIn("RSS ≈ 2.00 MiB + 1.50 × bundle, R² = 1.0000 | **met** |", text)
        self.assertIn("2.38 MiB (2,500,000 bytes), static | **met** |", text)

    def test_targets_say_missed_when_the_file_row_is_absent(self):
        del self.d.med[report.FILE20]
        text = "\n".join(report.section_targets(self.d))
        self.assertIn("| exec from a sealed file, 20 secrets | not measured (see probes) | **missed** |", text)

    def test_startup_has_a_row_per_variant_and_names_failed_probes(self):
        lines = report.section_startup(self.d)
        rows = [l for l in lines if l.startswith("| ") and not l.startswith(("| variant", "| ---"))]
        self.assertEqual([r.split(" | ")[0][2:] for r in rows], self.d.order)
        self.assertIn(f"| {report.FILE20} | 1.50 | 1.40 | 1.60 | 1.40–1.60 | +0.50 | 1.50 | 0.94 | – | 2.98 MiB |",
                      lines)
        self.assertIn("- **dumb-init** exited 127: `not found`", lines)

    def test_scale_shows_each_bundle_and_the_refusal(self):
        text = "\n".join(report.section_scale(self.d))
        self.assertIn("| 200 | 4.00 MiB | 0 | 21.00 | 20.00 | 22.00 | 8.00 MiB | 8.00 MiB | 8.00 MiB | 16.00 MiB |",
                      text)
        self.assertIn("- 400 secrets: `agent-init: too big`", text)
        self.assertIn("Those refusals are the check working", text)

    def test_size_lists_binaries_bloat_and_large_sections(self):
        text = "\n".join(report.section_size(self.d))
        self.assertIn("| `agent-init` | 2,500,000 | 2.38 MiB | static-pie |", text)
        self.assertIn("| `tini` | 900,000 |", text)
        self.assertIn(" 40.0% std", text)
        self.assertNotIn("Compiling", text)
        self.assertIn("`.text` 1.43 MiB, `.rodata` 293.0 KiB.", text)
        self.assertNotIn(".tiny", text)

    def test_criterion_rows_carry_median_interval_and_throughput(self):
        text = "\n".join(report.section_criterion(self.d))
        self.assertIn("| open/20 | 2 ms | 1.9 ms – 2.1 ms | 1000 MiB/s |", text)
        self.d.crit = []
        self.assertIn("Not run (BENCH_SKIP_CRITERION=1).", report.section_criterion(self.d))


class Report(unittest.TestCase):
    def test_report_writes_every_section_keeps_the_service_part_and_a_valid_chart(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            sample(out)
            md = os.path.join(tmp, "docs", "BENCHMARKS.md")
            svg = os.path.join(tmp, "docs", "benchmarks.svg")
            service = "<!-- service-bench:begin -->\nservice figures\n<!-- service-bench:end -->"
            write(md, "old text\n\n" + service + "\n")
            report.report(out, md, svg)
            text = open(md).read()
            for title in ("# Benchmarks", "## The machine", "## Targets", "## Start-up",
                          "## Scale", "## Size", "## In-process (criterion)"):
                self.assertIn(title, text)
            self.assertNotIn("old text", text)
            self.assertTrue(text.rstrip().endswith(service), text[-200:])
            root = ET.parse(svg).getroot()
            self.assertTrue(root.tag.endswith("svg"))
            labels = [t.text for t in root.iter() if t.tag.endswith("text")]
            self.assertIn(report.FILE20, labels)

    def test_collect_criterion_reads_each_new_estimate(self):
        with tempfile.TemporaryDirectory() as tmp:
            new = os.path.join(tmp, "crit", "open", "20", "new")
            write(os.path.join(new, "estimates.json"), json.dumps(
                {"median": {"point_estimate": 5.0,
                            "confidence_interval": {"lower_bound": 4.0, "upper_bound": 6.0}}}))
            write(os.path.join(new, "benchmark.json"), json.dumps(
                {"full_id": "open/20", "throughput": {"Bytes": 10}}))
            # A `base` estimate (criterion's previous run) is not collected.
            write(os.path.join(tmp, "crit", "open", "20", "base", "estimates.json"), "{}")
            dest = os.path.join(tmp, "criterion.json")
            report.collect_criterion(os.path.join(tmp, "crit"), dest)
            self.assertEqual(json.load(open(dest)), [
                {"id": "open/20", "median_ns": 5.0, "ci_lower_ns": 4.0, "ci_upper_ns": 6.0,
                 "throughput": {"Bytes": 10}}])


if __name__ == "__main__":
    unittest.main()
