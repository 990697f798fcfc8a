"""Every command against a table of bad inputs (issue 16): exit code 2, exactly one line on stderr, no
traceback, and every folder it could touch unchanged (the case's folder, the shared inputs, the working
directory). The CLI runs in-process (``rewardgauge.cli.main``), so the whole table takes seconds.

A row is ``(id, argv, files)``: ``argv`` may name ``{a}`` (the shared, valid inputs) and ``{d}`` (the case's own
empty folder, also the working directory); ``files`` are written into ``{d}`` first. ``LOCKED`` rows hold the
output's lock as another process would.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import filelock
import pytest

from rewardgauge.cli import main

# ---------------------------------------------------------------- bad data files (pairs)

GOOD_ROW = {"prompt": "compute 1 + 2 .", "chosen": "1 + 2 = 3 . answer 3 .", "rejected": "answer 4 ."}


def _row(**changes) -> bytes:
    return (json.dumps({**GOOD_ROW, **changes}) + "\n").encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_PAIRS: dict[str, bytes] = {
    "empty": b"",
    "blank_lines": b"\n  \n\n",
    "bad_json": b'{"prompt": "q", "chosen": \'a\', "rejected": "b"}\n',
    "not_an_object": b"[1, 2]\n",
    "latin1_bytes": _row()[:-1] + b"\n" + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n',
    "lone_surrogate_chosen": b'{"prompt": "q", "chosen": "a\\ud800", "rejected": "b"}\n',
    "lone_surrogate_prompt_message": b'{"prompt": [{"role": "user", "content": "\\udfff"}], "chosen": "a", '
                                     b'"rejected": "b"}\n',
    "lone_surrogate_meta_key": b'{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"\\ud83d": 1}}\n',
    "nan_in_meta": b'{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"score": NaN}}\n',
    "infinity_margin": b'{"prompt": "q", "chosen": "a", "rejected": "b", "margin": -Infinity}\n',
    "overflowing_float_in_meta": b'{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"x": [1e400]}}\n',
    "nested_3000_in_meta": ('{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"x": '
                            + _nested(3000) + "}}\n").encode(),
    "nested_500_in_meta": ('{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"x": '
                           + _nested(500) + "}}\n").encode(),
    "integer_of_5000_digits": b'{"prompt": "q", "chosen": "a", "rejected": "b", "meta": {"n": ' + b"7" * 5000
                              + b"}}\n",
    "chosen_nfc_rejected_nfd": _row(chosen="caf\u00e9 .", rejected="cafe\u0301 ."),
    "chosen_zero_width_space": _row(chosen="answer 3 .", rejected="answer\u200b 3 ."),
    "chosen_equals_rejected": _row(rejected=GOOD_ROW["chosen"]),
    "unknown_field": _row(vote=[1]),
    "wrong_type": _row(chosen=5),
    "votes_out_of_range": _row(votes=[1, 2]),
}
PAIR_COMMANDS = {
    "data_validate": ["data", "validate", "{d}/in.jsonl"],
    "data_convert": ["data", "convert", "--input", "{d}/in.jsonl", "--out", "{d}/out.jsonl"],
    "data_split": ["data", "split", "--input", "{d}/in.jsonl", "--out-dir", "{d}/split"],
    "rm_eval": ["rm", "eval", "--model", "{a}/model", "--data", "{d}/in.jsonl", "--device", "cpu"],
    "rm_audit": ["rm", "audit", "--model", "{a}/model", "--data", "{d}/in.jsonl", "--device", "cpu"],
    "rm_train": ["rm", "train", "--model", "{a}/model", "--data", "{d}/in.jsonl", "--out", "{d}/rm"],
    "dpo": ["dpo", "--model", "{a}/model", "--data", "{d}/in.jsonl", "--out", "{d}/dpo"],
}
# rm audit reads prompts-only files too: a file with no row, or whose first row has no 'chosen', is not pairs.
AUDIT_NOT_PAIRS = {"empty", "blank_lines", "bad_json", "not_an_object"}

BAD_DEMOS: dict[str, bytes] = {
    "empty": b"",
    "missing_response": b'{"prompt": "q"}\n',
    "lone_surrogate_response": b'{"prompt": "q", "response": "\\ud800"}\n',
    "nan_in_meta": b'{"prompt": "q", "response": "a", "meta": {"x": NaN}}\n',
    "nested_3000_in_meta": ('{"prompt": "q", "response": "a", "meta": ' + _nested(3000) + "}\n").encode(),
}


def _data_cases():
    for cmd, argv in PAIR_COMMANDS.items():
        for name, content in BAD_PAIRS.items():
            if cmd == "rm_audit" and name in AUDIT_NOT_PAIRS:
                continue
            yield pytest.param(argv, {"in.jsonl": content}, None, id=f"{cmd}-{name}")
    for name, content in BAD_DEMOS.items():
        yield pytest.param(["data", "validate", "--kind", "demonstrations", "{d}/in.jsonl"], {"in.jsonl": content},
                           None, id=f"data_validate_demos-{name}")
        yield pytest.param(["sft", "--model", "{a}/model", "--data", "{d}/in.jsonl", "--out", "{d}/sft"],
                           {"in.jsonl": content}, None, id=f"sft-{name}")


# ---------------------------------------------------------------- output paths

# command -> (argv before the output, the output flag, "file" or "dir")
OUTPUT_COMMANDS = {
    "data_convert": (["data", "convert", "--input", "{a}/pairs.jsonl"], "--out", "file"),
    "data_split": (["data", "split", "--input", "{a}/pairs.jsonl"], "--out-dir", "dir"),
    "rm_eval": (["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl"], "--out", "file"),
    "rm_audit": (["rm", "audit", "--model", "lab-gold", "--data", "{a}/pairs.jsonl"], "--out", "file"),
    "report": (["report", "{a}/run"], "--out", "file"),
    "lab_data": (["lab", "data", "--pairs", "20", "--heldout-pairs", "10", "--demos", "10", "--rl-prompts", "5"],
                 "--out", "dir"),
    "model_init": (["model", "init", "--corpus", "{a}/pairs.jsonl", "--preset", "tiny"], "--out", "dir"),
    "tasks_eval": (["tasks", "eval", "--tasks", "{a}/tasks.jsonl", "--completions", "{a}/completions.jsonl"],
                   "--out", "file"),
    "tasks_prompts": (["tasks", "prompts", "--tasks", "{a}/tasks.jsonl"], "--out", "file"),
    "quickstart": (["quickstart", "--pairs", "20"], "--out", "dir"),
    "rm_train": (["rm", "train", "--model", "{a}/model", "--data", "{a}/pairs.jsonl"], "--out", "dir"),
    "sft": (["sft", "--model", "{a}/model", "--data", "{a}/demos.jsonl"], "--out", "dir"),
    "prm_label": (["prm", "label", "--method", "propose", "--proposer", "lab-gold", "--data", "{a}/steps.jsonl"],
                  "--out", "dir"),
    "prm_eval": (["prm", "eval", "--model", "{a}/model", "--data", "{a}/steps.jsonl"], "--out", "file"),
    "bon": (["bon", "--samples", "{a}/samples.jsonl", "--checker", "lab"], "--out", "dir"),
    "dpo": (["dpo", "--model", "{a}/model", "--data", "{a}/pairs.jsonl"], "--out", "dir"),
    "rl": (["rl", "--prompts", "{a}/pairs.jsonl", "--policy.model", "{a}/model", "--reward.models", "lab-gold"],
           "--out", "dir"),
}


def _output_cases():
    for cmd, (argv, flag, kind) in OUTPUT_COMMANDS.items():
        bad = {"parent_is_a_file": ("{d}/file.txt/out", {"file.txt": b"x"}),
               "under_proc": ("/proc/rewardgauge-no-such/out", {})}
        if kind == "file":
            bad["is_a_folder"] = ("{d}/folder", {"folder/keep.txt": b"x"})
        else:
            bad["is_a_file"] = ("{d}/file.txt", {"file.txt": b"x"})
        for name, (path, files) in bad.items():
            yield pytest.param([*argv, flag, path], files, None, id=f"{cmd}-out_{name}")
    # A second writer of the same output folder stops at once.
    for cmd in ("lab_data", "data_split", "model_init", "quickstart", "prm_label", "bon", "rm_train", "sft", "dpo",
                "rl"):
        argv, flag, _ = OUTPUT_COMMANDS[cmd]
        yield pytest.param([*argv, flag, "{d}/out"], {}, "{d}/out", id=f"{cmd}-output_locked_by_another_writer")


# ---------------------------------------------------------------- options, models, configs

MODEL_EVAL = ["rm", "eval", "--data", "{a}/pairs.jsonl", "--device", "cpu", "--model"]
OPTION_CASES = [
    # rm eval
    ("rm_eval-batch_size_0", ["rm", "eval", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--batch-size", "0"]),
    ("rm_eval-batch_size_negative", ["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl",
                                     "--batch-size", "-4"]),
    ("rm_eval-batch_size_not_int", ["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl",
                                    "--batch-size", "x"]),
    ("rm_eval-device_bogus", ["rm", "eval", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--device", "bogus"]),
    ("rm_eval-device_absent_gpu", ["rm", "eval", "--model", "{a}/model", "--data", "{a}/pairs.jsonl",
                                   "--device", "cuda:99"]),
    ("rm_eval-easy_bar_above_1", ["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl", "--easy-bar", "1.5"]),
    ("rm_eval-hard_bar_nan", ["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl", "--hard-bar", "nan"]),
    ("rm_eval-aggregator_bogus", ["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl",
                                  "--aggregator", "max"]),
    ("rm_eval-aggregator_on_single_model", ["rm", "eval", "--model", "{a}/model", "--data", "{a}/pairs.jsonl",
                                            "--aggregator", "min"]),
    ("rm_eval-data_missing", ["rm", "eval", "--model", "lab-gold", "--data", "{d}/nope.jsonl"]),
    ("rm_eval-data_is_folder", ["rm", "eval", "--model", "lab-gold", "--data", "{a}"]),
    ("rm_eval-model_truncated_safetensors", [*MODEL_EVAL, "{a}/truncated_model"]),
    ("rm_eval-model_random_bytes_safetensors", [*MODEL_EVAL, "{a}/random_model"]),
    ("rm_eval-model_folder_missing", [*MODEL_EVAL, "{d}/no_model"]),
    ("rm_eval-model_folder_without_config", [*MODEL_EVAL, "{a}/run"]),
    ("rm_eval-model_config_not_json", [*MODEL_EVAL, "{a}/bad_config_model"]),
    ("rm_eval-model_hub_name_offline", [*MODEL_EVAL, "rewardgauge-test/no-such-model"]),
    # rm audit
    ("rm_audit-batch_size_0", ["rm", "audit", "--model", "lab-gold", "--data", "{a}/pairs.jsonl", "--batch-size", "0"]),
    ("rm_audit-limit_0", ["rm", "audit", "--model", "lab-gold", "--data", "{a}/pairs.jsonl", "--limit", "0"]),
    ("rm_audit-device_bogus", ["rm", "audit", "--model", "{a}/model", "--data", "{a}/pairs.jsonl",
                               "--device", "bogus"]),
    ("rm_audit-probes_bogus", ["rm", "audit", "--model", "lab-gold", "--data", "{a}/pairs.jsonl", "--probes", "x"]),
    ("rm_audit-model_truncated_safetensors", ["rm", "audit", "--model", "{a}/truncated_model", "--data",
                                              "{a}/pairs.jsonl", "--device", "cpu"]),
    ("audit-neither_data_nor_sycophancy", ["audit", "--rm", "lab-gold"]),
    ("audit-data_empty", ["audit", "--rm", "lab-gold", "--data", "{a}/empty.jsonl"]),
    ("audit-data_lone_surrogate", ["audit", "--rm", "lab-gold", "--data", "{a}/surrogate_pairs.jsonl"]),
    ("audit-out_parent_is_a_file", ["audit", "--rm", "lab-gold", "--data", "{a}/pairs.jsonl", "--out",
                                    "{a}/pairs.jsonl/audit.json"]),
    ("audit-batch_size_0", ["audit", "--rm", "lab-gold", "--data", "{a}/pairs.jsonl", "--batch-size", "0"]),
    ("audit-device_bogus", ["audit", "--rm", "{a}/model", "--data", "{a}/pairs.jsonl", "--device", "bogus"]),
    # sandbox run / probe
    ("sandbox_run-timeout_negative", ["sandbox", "run", "{a}/prog.py", "--timeout", "-1"]),
    ("sandbox_run-timeout_0", ["sandbox", "run", "{a}/prog.py", "--timeout", "0"]),
    ("sandbox_run-timeout_nan", ["sandbox", "run", "{a}/prog.py", "--timeout", "nan"]),
    ("sandbox_run-timeout_inf", ["sandbox", "run", "{a}/prog.py", "--timeout", "inf"]),
    ("sandbox_run-memory_0", ["sandbox", "run", "{a}/prog.py", "--memory-mb", "0"]),
    ("sandbox_run-memory_negative", ["sandbox", "run", "{a}/prog.py", "--memory-mb", "-5"]),
    ("sandbox_run-backend_bogus", ["sandbox", "run", "{a}/prog.py", "--backend", "docker"]),
    ("sandbox_run-file_missing", ["sandbox", "run", "{d}/nope.py"]),
    ("sandbox_run-file_is_folder", ["sandbox", "run", "{a}"]),
    ("sandbox_probe-python_missing", ["sandbox", "probe", "--python", "{d}/no-python"]),
    # tasks
    ("tasks_eval-timeout_negative", ["tasks", "eval", "--tasks", "{a}/tasks.jsonl", "--completions",
                                     "{a}/completions.jsonl", "--timeout", "-1"]),
    ("tasks_eval-k_0", ["tasks", "eval", "--tasks", "{a}/tasks.jsonl", "--completions", "{a}/completions.jsonl",
                        "-k", "0"]),
    ("tasks_eval-workers_negative", ["tasks", "eval", "--tasks", "{a}/tasks.jsonl", "--completions",
                                     "{a}/completions.jsonl", "--workers", "-1"]),
    ("tasks_eval-memory_0", ["tasks", "eval", "--tasks", "{a}/tasks.jsonl", "--completions",
                             "{a}/completions.jsonl", "--memory-mb", "0"]),
    ("tasks_eval-tasks_missing", ["tasks", "eval", "--tasks", "{d}/nope.jsonl", "--completions",
                                  "{a}/completions.jsonl"]),
    ("tasks_prompts-tasks_bad_json", ["tasks", "prompts", "--tasks", "{a}/pairs.jsonl", "--out", "{d}/p.jsonl"]),
    # data split / convert options
    ("data_split-heldout_fraction_above_1", ["data", "split", "--input", "{a}/pairs.jsonl", "--out-dir", "{d}/s",
                                             "--heldout-fraction", "1.5"]),
    ("data_split-heldout_fraction_nan", ["data", "split", "--input", "{a}/pairs.jsonl", "--out-dir", "{d}/s",
                                         "--heldout-fraction", "nan"]),
    ("data_split-seed_not_int", ["data", "split", "--input", "{a}/pairs.jsonl", "--out-dir", "{d}/s",
                                 "--seed", "1.5"]),
    ("data_convert-out_equals_input", ["data", "convert", "--input", "{a}/pairs.jsonl", "--out", "{a}/pairs.jsonl"]),
    ("data_convert-format_bogus", ["data", "convert", "--input", "{a}/pairs.jsonl", "--out", "{d}/o.jsonl",
                                   "--format", "csv"]),
    ("data_convert-columns_malformed", ["data", "convert", "--input", "{a}/pairs.jsonl", "--out", "{d}/o.jsonl",
                                       "--columns", "chosen"]),
    ("data_convert-hh_rlhf_nothing_usable", ["data", "convert", "--format", "hh-rlhf", "--input",
                                             "{a}/hh_unusable.jsonl", "--out", "{d}/o.jsonl"]),
    # lab
    ("lab_data-pool_bogus", ["lab", "data", "--out", "{d}/lab", "--pool", "bogus"]),
    ("lab_data-families_not_json", ["lab", "data", "--out", "{d}/lab", "--families", "{arithmetic"]),
    ("lab_data-families_all_zero", ["lab", "data", "--out", "{d}/lab", "--families", '{"arithmetic": 0}']),
    ("lab_data-share_style_above_1", ["lab", "data", "--out", "{d}/lab", "--share-style", "2"]),
    ("lab_data-votes_above_annotators", ["lab", "data", "--out", "{d}/lab", "--votes", "20", "--annotators", "16"]),
    ("lab_data-out_is_a_folder_of_other_things", ["lab", "data", "--out", "{a}/run", "--pairs", "10"]),
    ("lab_gold-file_missing", ["lab", "gold", "{d}/nope.jsonl"]),
    ("lab_gold-no_response_field", ["lab", "gold", "{a}/tasks.jsonl"]),
    ("lab_gold-prompt_not_a_string", ["lab", "gold", "{a}/gold_bad_prompt.jsonl"]),
    ("lab_gold-lone_surrogate", ["lab", "gold", "{a}/gold_surrogate.jsonl"]),
    # monitor (the human labelling queue)
    ("monitor_status-not_a_queue", ["monitor", "status", "--queue", "{a}/run"]),
    ("monitor_import-queue_missing", ["monitor", "import", "--queue", "{d}/no_queue", "{a}/labels_good.jsonl"]),
    ("monitor_import-labels_missing", ["monitor", "import", "--queue", "{a}/queue", "{d}/nope.jsonl"]),
    ("monitor_import-preferred_bogus", ["monitor", "import", "--queue", "{a}/queue", "{a}/labels_good.jsonl",
                                        "{a}/labels_bad.jsonl"]),
    ("monitor_import-id_never_exported", ["monitor", "import", "--queue", "{a}/queue", "{a}/labels_unknown.jsonl"]),
    ("monitor_import-csv_not_utf8", ["monitor", "import", "--queue", "{a}/queue", "{a}/labels_latin1.csv"]),
    # model init
    ("model_init-min_count_0", ["model", "init", "--corpus", "{a}/pairs.jsonl", "--out", "{d}/m", "--min-count", "0"]),
    ("model_init-preset_bogus", ["model", "init", "--corpus", "{a}/pairs.jsonl", "--out", "{d}/m", "--preset", "huge"]),
    ("model_init-corpus_missing", ["model", "init", "--corpus", "{d}/nope.jsonl", "--out", "{d}/m"]),
    ("model_init-corpus_without_text", ["model", "init", "--corpus", "{a}/completions.jsonl", "--out", "{d}/m"]),
    ("model_init-out_is_a_folder_of_other_things", ["model", "init", "--corpus", "{a}/pairs.jsonl", "--out",
                                                    "{a}/run"]),
    # report
    ("report-run_dir_missing", ["report", "{d}/no_run"]),
    ("report-run_dir_is_a_file", ["report", "{a}/pairs.jsonl"]),
    ("report-max_points_too_small", ["report", "{a}/run", "--out", "{d}/r.html", "--max-points", "5"]),
    ("report-out_ends_in_md", ["report", "{a}/run", "--out", "{d}/r.md"]),
    # quickstart
    ("quickstart-preset_bogus", ["quickstart", "--out", "{d}/qs", "--preset", "huge"]),
    ("quickstart-rm_loss_bogus", ["quickstart", "--out", "{d}/qs", "--rm-loss", "hinge"]),
    ("quickstart-batch_size_0", ["quickstart", "--out", "{d}/qs", "--batch-size", "0"]),
    ("quickstart-sft_lr_inf", ["quickstart", "--out", "{d}/qs", "--sft-lr", "inf"]),
    # sft / rm train options checked before the run directory exists
    ("rm_train-batch_size_0", ["rm", "train", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--out", "{d}/rm",
                               "--batch-size", "0"]),
    ("sft-lr_nan", ["sft", "--model", "{a}/model", "--data", "{a}/demos.jsonl", "--out", "{d}/sft", "--lr", "nan"]),
    ("sft-epochs_0", ["sft", "--model", "{a}/model", "--data", "{a}/demos.jsonl", "--out", "{d}/sft", "--epochs", "0"]),
    # process reward models and best-of-N
    ("prm_eval-threshold_above_1", ["prm", "eval", "--model", "{a}/model", "--data", "{a}/steps.jsonl",
                                    "--threshold", "1.5"]),
    ("prm_eval-batch_size_0", ["prm", "eval", "--model", "{a}/model", "--data", "{a}/steps.jsonl",
                               "--batch-size", "0"]),
    ("prm_eval-model_not_a_prm", ["prm", "eval", "--model", "{a}/model", "--data", "{a}/steps.jsonl"]),
    ("prm_train-data_is_pairs", ["prm", "train", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--out",
                                 "{d}/prm"]),
    ("prm_label-data_is_pairs", ["prm", "label", "--method", "propose", "--proposer", "lab-gold", "--data",
                                 "{a}/pairs.jsonl", "--out", "{d}/l"]),
    ("prm_label-rollouts_without_policy", ["prm", "label", "--data", "{a}/steps.jsonl", "--out", "{d}/l"]),
    ("prm_label-rollouts_0", ["prm", "label", "--data", "{a}/steps.jsonl", "--out", "{d}/l", "--policy",
                              "{a}/model", "--rollouts", "0"]),
    ("prm_label-device_bogus", ["prm", "label", "--data", "{a}/steps.jsonl", "--out", "{d}/l", "--policy",
                                "{a}/model", "--checker", "lab", "--device", "bogus"]),
    ("prm_review-per_item_0", ["prm", "review", "--data", "{a}/steps.jsonl", "--out", "{d}/q", "--per-item", "0"]),
    ("prm_review-host_without_token", ["prm", "review", "--data", "{a}/steps.jsonl", "--out", "{d}/q", "--host",
                                       "0.0.0.0"]),
    ("bon-neither_samples_nor_policy", ["bon", "--out", "{d}/b", "--checker", "lab"]),
    ("bon-draws_0", ["bon", "--samples", "{a}/samples.jsonl", "--out", "{d}/b", "--checker", "lab", "--draws", "0"]),
    ("bon-samples_are_pairs", ["bon", "--samples", "{a}/pairs.jsonl", "--out", "{d}/b", "--checker", "lab"]),
    ("bon-numeric_without_reference", ["bon", "--samples", "{a}/samples.jsonl", "--out", "{d}/b"]),
    # serve: every case stops before a server runs (the address rule itself is tested in tests/serve/test_auth.py)
    ("serve-max_batch_size_0", ["serve", "--rm", "lab-gold", "--max-batch-size", "0"]),
    ("serve-request_items_over_queue", ["serve", "--rm", "lab-gold", "--max-request-items", "10", "--max-queue", "5"]),
    ("serve-port_out_of_range", ["serve", "--rm", "lab-gold", "--port", "70000"]),
    ("serve-max_wait_nan", ["serve", "--rm", "lab-gold", "--max-wait-ms", "nan"]),
    ("serve-token_file_missing", ["serve", "--rm", "lab-gold", "--token-file", "{d}/nope"]),
    ("serve-token_file_with_spaces", ["serve", "--rm", "lab-gold", "--token-file", "{a}/pairs.jsonl"]),
    ("serve-rm_missing", ["serve", "--rm", "{d}/nope", "--port", "0"]),
    # usage errors (argparse) in the same one-line form
    ("cli-unknown_command", ["nope"]),
    ("cli-unknown_flag", ["data", "validate", "{a}/pairs.jsonl", "--bogus"]),
    ("cli-flag_without_value", ["rm", "eval", "--model", "lab-gold", "--data", "{a}/pairs.jsonl", "--batch-size"]),
    ("cli-missing_required_option", ["data", "split", "--input", "{a}/pairs.jsonl"]),
    # --config files
    ("config-missing", ["data", "validate", "{a}/pairs.jsonl", "--config", "{d}/nope.yaml"]),
    ("config-invalid_yaml", ["sandbox", "run", "{a}/prog.py", "--config", "{a}/configs/invalid.yaml"]),
    ("config-not_a_mapping", ["rm", "eval", "--config", "{a}/configs/list.yaml"]),
    ("config-unknown_key", ["lab", "data", "--out", "{d}/lab", "--config", "{a}/configs/unknown_key.yaml"]),
    ("config-wrong_type", ["data", "split", "--config", "{a}/configs/wrong_type.yaml"]),
]
RL = ["rl", "--policy.model", "{a}/model", "--out", "{d}/rl"]
RL_CASES = [  # the acceptance list of issue 9, and a few more
    ("rl-reward_missing", [*RL, "--prompts", "{a}/pairs.jsonl", "--reward.models", "{d}/no_such_rm"]),
    ("rl-prompts_empty", [*RL, "--prompts", "{a}/empty.jsonl", "--reward.models", "lab-gold"]),
    ("rl-group_size_1", [*RL, "--prompts", "{a}/pairs.jsonl", "--reward.models", "lab-gold",
                         "--generation.group-size", "1"]),
    ("rl-weights_mismatch", [*RL, "--prompts", "{a}/pairs.jsonl", "--reward.models", "lab-gold",
                             "--reward.weights", "1,2"]),
    ("rl-aggregator_not_ensemble", [*RL, "--prompts", "{a}/pairs.jsonl", "--reward.models", "lab-gold",
                                    "--reward.aggregator", "min"]),
    ("rl-kl_coef_negative", [*RL, "--prompts", "{a}/pairs.jsonl", "--reward.models", "lab-gold", "--kl.coef", "-1"]),
    ("rl-unknown_section_key", [*RL, "--prompts", "{a}/pairs.jsonl", "--reward.models", "lab-gold",
                                "--generation.bogus", "1"]),
    ("dpo-beta_zero", ["dpo", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--out", "{d}/dpo", "--beta", "0"]),
    ("dpo-loss_bogus", ["dpo", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--out", "{d}/dpo",
                        "--loss", "hinge"]),
]
RUN_DIRECTORY_OPTION_CASES = [  # checked by the run directory before anything is written
    ("rm_train-lr_inf", ["rm", "train", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--out", "{d}/rm",
                         "--lr", "inf"]),
    ("rm_train-max_grad_norm_nan", ["rm", "train", "--model", "{a}/model", "--data", "{a}/pairs.jsonl", "--out",
                                    "{d}/rm", "--max-grad-norm", "nan"]),
    ("rm_train-model_truncated_safetensors", ["rm", "train", "--model", "{a}/truncated_model", "--data",
                                              "{a}/pairs.jsonl", "--out", "{d}/rm"]),
    ("rm_train-model_hub_name_offline", ["rm", "train", "--model", "rewardgauge-test/no-such-model", "--data",
                                         "{a}/pairs.jsonl", "--out", "{d}/rm"]),
    ("rm_train-data_missing", ["rm", "train", "--model", "{a}/model", "--data", "{d}/nope.jsonl", "--out", "{d}/rm"]),
    ("rm_train-out_is_the_model", ["rm", "train", "--model", "{a}/model", "--data", "{a}/bad_pairs.jsonl", "--out",
                                   "{a}/model"]),
    ("config-latin1_bytes", ["data", "validate", "{a}/pairs.jsonl", "--config", "{a}/configs/latin1.yaml"]),
    ("config-duplicate_key", ["data", "split", "--input", "{a}/pairs.jsonl", "--out-dir", "{d}/s",
                              "--config", "{a}/configs/duplicate.yaml"]),
]


# rewardgauge run: every stage's config is checked before the first stage runs (out: a folder in {d})
_PIPELINE = b"out: run\nstages:\n  lab:\n    pairs: 10\n  sft:\n    model: ${lab}\n    data: ${lab}/sft.jsonl\n"
RUN_CASES = [
    ("run-config_missing", {}),
    ("run-unknown_top_level_key", {"p.yaml": _PIPELINE + b"bogus: 1\n"}),
    ("run-no_stages", {"p.yaml": b"out: run\n"}),
    ("run-unknown_kind", {"p.yaml": _PIPELINE + b"  judge:\n    model: x\n"}),
    ("run-unknown_stage_field", {"p.yaml": _PIPELINE + b"    lrate: 1\n"}),
    ("run-bad_value", {"p.yaml": _PIPELINE + b"    lr: fast\n"}),
    ("run-reference_to_a_later_stage", {"p.yaml": _PIPELINE.replace(b"model: ${lab}", b"model: ${rm}")}),
    ("run-out_given_in_a_stage", {"p.yaml": _PIPELINE + b"    out: elsewhere\n"}),
    ("run-stage_check_fails", {"p.yaml": _PIPELINE + b"    epochs: 0\n"}),
]


def _option_cases():
    for case_id, files in RUN_CASES:
        yield pytest.param(["run", "{d}/p.yaml", "--no-progress"], files, None, id=case_id)
    for case_id, argv in OPTION_CASES:
        yield pytest.param(argv, {}, None, id=case_id)
    for case_id, argv in (*RUN_DIRECTORY_OPTION_CASES, *RL_CASES):
        yield pytest.param(argv, {}, None, id=case_id)


CASES = [*_data_cases(), *_output_cases(), *_option_cases()]

# ---------------------------------------------------------------- shared inputs, built once


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    from rewardgauge.modeling.policy import init_model

    a = tmp_path_factory.mktemp("assets")
    rows = [GOOD_ROW, {"prompt": "compute 2 + 2 .", "chosen": "2 + 2 = 4 . answer 4 .", "rejected": "answer 5 ."},
            {"prompt": "what is the capital of japan ?", "chosen": "the capital of japan is tokyo .",
             "rejected": "certainly ! the capital of japan is paris ."}]
    (a / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (a / "bad_pairs.jsonl").write_bytes(BAD_PAIRS["chosen_equals_rejected"])
    (a / "surrogate_pairs.jsonl").write_bytes(BAD_PAIRS["lone_surrogate_chosen"])
    (a / "empty.jsonl").write_bytes(b"")
    (a / "demos.jsonl").write_text("".join(json.dumps({"prompt": r["prompt"], "response": r["chosen"]}) + "\n"
                                           for r in rows))
    init_model([a / "pairs.jsonl"], a / "model", preset="tiny")
    weights = (a / "model" / "model.safetensors").read_bytes()
    for name, content in (("truncated_model", weights[: len(weights) // 2]),
                          ("random_model", os.urandom(4096))):
        shutil.copytree(a / "model", a / name)
        (a / name / "model.safetensors").write_bytes(content)
    shutil.copytree(a / "model", a / "bad_config_model")
    (a / "bad_config_model" / "config.json").write_text('{"model_type": "llama", ')
    task = {"task_id": "t1", "prompt": "def add(a, b):\n", "entry_point": "add", "tests": ["assert add(1, 2) == 3"]}
    (a / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    (a / "completions.jsonl").write_text(json.dumps({"task_id": "t1", "completion": "    return a + b\n"}) + "\n")
    (a / "prog.py").write_text("print('hi')\n")
    (a / "steps.jsonl").write_text(json.dumps({"prompt": "compute 1 + 2 .", "steps": ["1 + 2 = 3 .", "answer 3 ."],
                                               "labels": [True, True], "source": "human"}) + "\n")
    (a / "samples.jsonl").write_text(json.dumps({"prompt": "compute 1 + 2 .",
                                                 "responses": ["answer 3 .", "answer 4 ."]}) + "\n")
    (a / "run").mkdir()
    (a / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (a / "hh_unusable.jsonl").write_text(json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: same",
                                                     "rejected": "\n\nHuman: hi\n\nAssistant: same"}) + "\n")
    (a / "gold_bad_prompt.jsonl").write_text(json.dumps({"prompt": 5, "response": "answer 3 ."}) + "\n")
    (a / "gold_surrogate.jsonl").write_text('{"prompt": "compute 1 + 2 .", "response": "answer \\ud800 ."}\n')
    from rewardgauge.monitor.labellers import HumanQueue, comparison_id

    HumanQueue(a / "queue").export(["q"], ["x"], ["y"], step=1)
    (a / "labels_good.jsonl").write_text(json.dumps({"id": comparison_id("q", "x", "y"), "preferred": "a"}) + "\n")
    (a / "labels_bad.jsonl").write_text(json.dumps({"id": comparison_id("q", "x", "y"), "preferred": "c"}) + "\n")
    (a / "labels_unknown.jsonl").write_text(json.dumps({"id": "0123", "preferred": "a"}) + "\n")
    (a / "labels_latin1.csv").write_bytes(b"id,preferred\n" + comparison_id("q", "x", "y").encode() + b",caf\xe9\n")
    configs = a / "configs"
    configs.mkdir()
    (configs / "invalid.yaml").write_text("timeout: [1, 2\n")
    (configs / "list.yaml").write_text("- model\n- data\n")
    (configs / "unknown_key.yaml").write_text("pairs: 10\nbogus: 1\n")
    (configs / "wrong_type.yaml").write_text(f"input: {a}/pairs.jsonl\nout_dir: {a}/never\nseed: [1]\n")
    (configs / "latin1.yaml").write_bytes(b"kind: pairs\n# caf\xe9\n")
    (configs / "duplicate.yaml").write_bytes(b"seed: 1\nseed: 2\n")
    return a


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every entry under ``folders``: kind, mode and content hash (a changed, added or removed file shows)."""
    state: dict[str, tuple] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = Path(root, name)
                mode = path.lstat().st_mode
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
                state[str(path)] = (path.is_dir(), mode, digest)
    return state


def run_cli(argv: list[str]) -> tuple[int | str, str, str]:
    """``main(argv)`` in this process: (exit code or the escaping exception, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | str = main(argv)
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # a traceback in a terminal
            code = f"{type(e).__name__}: {e}"
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv,files,locked", CASES)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(assets, tmp_path, monkeypatch, argv, files, locked):
    case = tmp_path / "case"
    case.mkdir()
    for name, content in files.items():
        (case / name).parent.mkdir(parents=True, exist_ok=True)
        (case / name).write_bytes(content)
    monkeypatch.chdir(case)
    argv = [arg.replace("{a}", str(assets)).replace("{d}", str(case)) for arg in argv]
    with contextlib.ExitStack() as stack:
        if locked:  # another writer holds the output; its lock file is part of the folder already
            target = Path(locked.replace("{d}", str(case)))
            stack.enter_context(filelock.FileLock(target.parent / f".{target.name}.lock", timeout=0))
        before = snapshot(case, assets)
        code, out, err = run_cli(argv)
        after = snapshot(case, assets)
    assert code == 2, f"exit {code!r}; stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rewardgauge: error: "), err
    assert "Traceback" not in err + out
    assert after == before, f"changed: {sorted(set(after.items()) ^ set(before.items()))}"


def test_the_matrix_covers_every_command_with_over_100_cases():
    from rewardgauge.cli import build_parser

    commands = set()
    for action in build_parser()._subparsers._group_actions:
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if isinstance(a, type(action))]
            commands |= {f"{name}_{n}" for n in nested[0].choices} if nested else {name}
    covered = {str(case.id).split("-")[0] for case in CASES}
    assert commands - covered == set(), commands - covered
    assert len(CASES) >= 100
