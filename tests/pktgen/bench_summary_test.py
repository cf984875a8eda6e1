#!/usr/bin/python3
"""bench/run's summary of interleaved rounds, on made-up generator reports.

The timed trials cannot run in a test, so this loads bench/run as a module and feeds its
summary functions reports shaped like sluice-pktgen's --json output. It checks the medians
over the rounds and the ratio as the median of each round's ratio. It also checks that the
zero-loss rate comes from the first round, and the ≥ mark when testpmd lost nothing at full
speed.
"""
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "bench", "run")


def load_bench_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", RUN)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench = load_bench_run()
SCENARIO = {"name": "tcp-ack-1m-flows"}


def report(max_pps, max_loss=0.01, zero_loss_pps=None):
    """Returns a generator report shaped like sluice-pktgen's --json output."""
    trials = [{"kind": "max", "offered_pps": max_pps * 1.1, "received_pps": max_pps, "loss": max_loss}]
    if zero_loss_pps is not None:
        trials.append({"kind": "search", "offered_pps": zero_loss_pps, "received_pps": zero_loss_pps,
                       "loss": 0, "latency_ns": {"p50": 5000, "p99": 9000}})
    return {"max_received_pps": max_pps, "trials": trials, "zero_loss_pps": zero_loss_pps}


def sluice_session(max_pps, cycles, round_trips, zero_loss_pps=None):
    """Returns what Run.measure_sluice returns for one session."""
    return {"report": report(max_pps, zero_loss_pps=zero_loss_pps), "cycles_per_packet": cycles,
            "drops": {}, "churn_changes": 3, "core_to_core_ns": round_trips}


def testpmd_session(max_pps, round_trips, max_loss=0.01):
    """Returns what Run.measure_testpmd returns for one session."""
    return {"report": report(max_pps, max_loss=max_loss, zero_loss_pps=max_pps * 0.9),
            "core_to_core_ns": round_trips}


class SummaryTest(unittest.TestCase):
    def test_median(self):
        self.assertEqual(bench.median([3, 1, 2]), 2)
        self.assertEqual(bench.median([4, 1, 3, 2]), 2.5)
        self.assertEqual(bench.median([None, 5]), 5)
        self.assertIsNone(bench.median([None]))
        self.assertIsNone(bench.median([]))

    def test_medians_over_rounds(self):
        rounds = [
            # The machine was slow during the first Sluice session only.
            {"sluice": sluice_session(4.0e6, 600, [330, 80], zero_loss_pps=3.5e6), "testpmd": testpmd_session(8.0e6, [80, 75])},
            {"sluice": sluice_session(7.6e6, 300, [70, 72]), "testpmd": testpmd_session(8.0e6, [71, 74])},
            {"sluice": sluice_session(7.2e6, 310, [75, 76]), "testpmd": testpmd_session(6.0e6, [340, 335])},
        ]
        summary = bench.summarize(SCENARIO, rounds, {"ns_per_packet": 400})
        self.assertAlmostEqual(summary["sluice_mpps"], 7.2)
        self.assertAlmostEqual(summary["testpmd_mpps"], 8.0)
        # Round ratios 50%, 95%, 120%: the median is the middle round's, not 7.2 / 8.0.
        self.assertEqual([round(r["ratio"], 3) for r in summary["rounds"]], [0.5, 0.95, 1.2])
        self.assertAlmostEqual(summary["ratio"], 0.95)
        self.assertAlmostEqual(summary["cycles_per_packet"], 310)
        self.assertAlmostEqual(summary["zero_loss_mpps"], 3.5)
        self.assertEqual(summary["sluice_latency_ns_at_zero_loss"], {"p50": 5000, "p99": 9000})
        self.assertEqual(summary["core_to_core_ns"]["sluice"], [330, 80, 70, 72, 75, 76])
        self.assertEqual(summary["core_to_core_ns"]["testpmd"], [80, 75, 71, 74, 340, 335])
        self.assertFalse(summary["testpmd_generator_bound"])
        self.assertEqual(summary["xdp_ns_per_packet"], 400)

        table = bench.markdown_table([summary])
        row = table.splitlines()[2]
        self.assertEqual([cell.strip() for cell in row.strip("|").split("|")],
                         ["tcp-ack-1m-flows", "7.20", "8.00", "95.0%", "50%, 95%, 120%", "3.50", "310", "400",
                          "70 to 340"])
        rows = bench.rounds_table([summary]).splitlines()[2:]
        self.assertEqual(len(rows), 3)
        self.assertIn("| 1 | 4.00 | 8.00 | 50% | 600 | 330, 80 / 80, 75 |", rows[0])

    def test_generator_bound_in_any_round(self):
        rounds = [
            {"sluice": sluice_session(6.0e6, 400, [80, 80]), "testpmd": testpmd_session(7.0e6, [80, 80])},
            {"sluice": sluice_session(6.5e6, 380, [80, 80]), "testpmd": testpmd_session(7.0e6, [80, 80], max_loss=0)},
        ]
        summary = bench.summarize(SCENARIO, rounds, None)
        self.assertTrue(summary["testpmd_generator_bound"])
        self.assertIn("| ≥ 7.00 |", bench.markdown_table([summary]))
        self.assertIsNone(summary["xdp_ns_per_packet"])

    def test_no_rounds(self):
        # A dry run times nothing: every figure but XDP's is empty.
        summary = bench.summarize(SCENARIO, [], {"ns_per_packet": 300})
        for key in ("sluice_mpps", "testpmd_mpps", "ratio", "zero_loss_mpps", "cycles_per_packet",
                    "testpmd_generator_bound"):
            self.assertIsNone(summary[key], key)
        self.assertEqual(bench.markdown_table([summary]).splitlines()[2],
                         "| tcp-ack-1m-flows | — | — | — | — | — | — | 300 | — |")

    def test_drops_line(self):
        summary = bench.summarize(SCENARIO, [], None)
        self.assertEqual(bench.drops_text([summary]), "Sluice's drops in the first round: none.")
        rounds = [{"sluice": sluice_session(6e6, 400, [80, 90]), "testpmd": testpmd_session(7e6, [80, 90])}]
        rounds[0]["sluice"]["drops"] = {"tx_queue_full": 64, "no_backend": 2}
        summary = bench.summarize(SCENARIO, rounds, None)
        self.assertEqual(bench.drops_text([summary]),
                         "Sluice's drops in the first round: tcp-ack-1m-flows: no_backend 2, tx_queue_full 64.")

    def test_same_cpu_rejected(self):
        result = subprocess.run([sys.executable, RUN, "--worker-cpu", "0", "--generator-cpu", "0"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("--generator-cpu and --worker-cpu are both 0", result.stderr)

    def test_scenarios_in_one_option(self):
        result = subprocess.run([sys.executable, RUN, "--scenario", "udp-imix", "nonsense"],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn("invalid choice: 'nonsense'", result.stderr)
        self.assertIn("bench/run: error:", result.stderr)

    def test_bad_rounds_argument(self):
        for value in ("0", "51", "-3"):
            result = subprocess.run([sys.executable, RUN, "--rounds", value], capture_output=True, text=True)
            self.assertEqual(result.returncode, 1, value)
            self.assertIn("--rounds must be between 1 and 50", result.stderr)
        result = subprocess.run([sys.executable, RUN, "--rounds", "two"], capture_output=True, text=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn("invalid int value", result.stderr)


if __name__ == "__main__":
    unittest.main()
