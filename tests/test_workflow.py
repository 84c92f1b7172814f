"""The workflow as a user runs it: dry run, lint, and the whole DAG on config/test.yaml in a temp dir."""

import base64
import json
import re

import pandas as pd
import pytest
import yaml
from workflow_helpers import snakemake

# the lines of a dry run that say what one job is (its id and timestamp follow the planning order)
JOB_LINE = re.compile(r"^(?:(?:local)?rule \S+:|    (?:input|output|log|wildcards): .*)$")


def planned_jobs(dry_run: str) -> list[str]:
    """The jobs of a dry run, each as its rule, inputs, outputs, log and wildcards, sorted: Snakemake
    prints independent jobs in an order that follows object ids, not the workflow."""
    jobs = []
    for line in dry_run.splitlines():
        if JOB_LINE.match(line):
            if line.startswith(("rule ", "localrule ")):
                jobs.append([])
            if jobs:
                jobs[-1].append(line)
    return sorted("\n".join(job) for job in jobs)


def reversed_keys(value):
    """``value`` with every mapping's keys in reverse order, recursively."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def test_dry_run_of_default_config(workflow_copy):
    proc = snakemake(workflow_copy, "-n")
    assert "acquire_synthetic" in proc.stdout and "write_datacard" in proc.stdout


def test_lint_is_clean(workflow_copy):
    proc = snakemake(workflow_copy, "--lint", check=False)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_include_order_of_the_stage_files_is_irrelevant(workflow_copy):
    """The stage files read no global of one another (rules/common.smk, first, defines what they share),
    so including them in reverse order plans the same jobs with the same inputs."""
    snakefile = (workflow_copy / "Snakefile").read_text()
    includes = re.findall(r'^include: "rules/(?!common\.smk)[^"]+"$', snakefile, flags=re.M)
    assert len(includes) >= 4
    parts = re.split(r'^include: "rules/(?!common\.smk)[^"]+"$', snakefile, flags=re.M)
    permuted = parts[0] + "".join(include + part for include, part in zip(reversed(includes), parts[1:]))
    assert permuted != snakefile
    (workflow_copy / "Snakefile.reversed").write_text(permuted)
    args = ("-n", "--forceall", "--configfile", "config/test.yaml")
    jobs = planned_jobs(snakemake(workflow_copy, *args).stdout)
    assert len(jobs) > 40 and any("rule audit_pretrained:" in job for job in jobs)
    assert planned_jobs(snakemake(workflow_copy, *args, "--snakefile", "Snakefile.reversed").stdout) == jobs


def test_bad_config_fails_with_the_key_named(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "--config", "seed=minus-one", check=False)
    assert proc.returncode != 0 and "seed" in proc.stdout + proc.stderr


def test_config_errors_are_one_line_each_with_the_full_key_and_the_files(workflow_copy):
    unknown = snakemake(workflow_copy, "-n", "--config", "bogus=1", check=False)
    output = unknown.stdout + unknown.stderr
    assert unknown.returncode != 0 and len(output.splitlines()) < 20
    assert "invalid configuration (from config/config.yaml, with any --config values on top)" in output
    assert "config: Additional properties are not allowed ('bogus' was unexpected)" in output
    (workflow_copy / "config" / "bad_steps.yaml").write_text("similarity: {train: {steps: 0}}\n")
    section = snakemake(workflow_copy, "-n", "--configfile", "config/bad_steps.yaml", check=False)
    output = section.stdout + section.stderr
    assert section.returncode != 0 and "config/bad_steps.yaml" in output
    assert "config.similarity.train.steps: 0 is less than the minimum of 1" in output


def check_finetune_tables(results):
    """Tables II–VI of the test config: every row, mean ± std cells, every run in the runs twin."""
    tables = results / "tables"
    for task in ("dfc2020", "dw", "osm"):
        table = pd.read_csv(tables / f"finetune_{task}.csv")
        # S1: random, single-modal, CromSS-midF; S2: those, (0, 0) smoothing, self-denoised labels
        assert len(table) == 8 and set(table["data"]) == {"synthetic"}
        assert table["frozen mIoU"].str.match(r"^\d\.\d{4} ± \d\.\d{4}$").all()
        runs = pd.read_csv(tables / f"finetune_{task}_runs.csv")
        assert len(runs) == 8 * 2 * 2 and runs["mIoU"].between(0, 1).all()  # rows x modes x repeats
        for figure in ("maps", "weight_kl", "bn_kl", "pca"):
            assert (results / "finetune" / task / f"{figure}.png").stat().st_size > 1000
    ablation = pd.read_csv(tables / "finetune_ablation.csv")
    assert len(ablation) == 6 and not ablation.filter(like="mIoU").isna().any(axis=None)
    smoothing = pd.read_csv(tables / "finetune_smoothing.csv")
    assert sorted(zip(smoothing["β (spatial-temporal)"], smoothing["α (uniform)"])) == [(0, 0), (0.15, 0.05)]
    assert "SYNTHETIC" in (tables / "finetune_dw.md").read_text()


@pytest.fixture(scope="module")
def test_config_run(workflow_copy):
    """The whole DAG of config/test.yaml, run once for the tests of this module that read its results."""
    snakemake(workflow_copy, "--configfile", "config/test.yaml")
    return workflow_copy


@pytest.mark.slow
def test_end_to_end_on_test_config(test_config_run):
    workflow_copy = test_config_run
    results = workflow_copy / "results"
    for name in ("noldo", "dw", "osm", "dfc2020", "lsr"):
        card = json.loads((results / "data" / name / "datacard.json").read_text())
        assert card["synthetic"] and card["samples"] > 0
        assert (results / "data" / name / "preview.png").stat().st_size > 1000
        acquired = {"noldo": "noldo_raw", "osm": "osm_raw"}.get(name, name)
        assert (workflow_copy / "logs" / "acquire_synthetic" / f"{acquired}.log").is_file()
    noldo = json.loads((results / "data" / "noldo" / "datacard.json").read_text())
    assert abs(noldo["label_quality"][0]["pixel_accuracy"] - 0.70) <= 0.02
    # assembly drops the incomplete location of test.yaml, the filter at least one DW tile
    assert noldo["assembly"]["locations_raw"] == 4 and noldo["assembly"]["locations_kept"] == noldo["locations"] == 3
    osm = json.loads((results / "data" / "osm" / "datacard.json").read_text())
    assert 0 < osm["osm_filter"]["kept"] < osm["osm_filter"]["tiles"] == 3 and osm["samples"] == osm["osm_filter"]["kept"]
    sweep = pd.read_csv(results / "tables" / "osm_filter.csv")
    for _, rows in sweep.groupby("maps"):  # raw and, with alignment on in test.yaml, aligned maps
        assert rows["kept"].is_monotonic_decreasing and 0.7 in rows["threshold"].tolist()
    summary = (results / "report" / "summary.md").read_text()
    assert "Synthetic world" in summary and "noldo" in summary
    assert "assembled: 3 of 4 locations complete" in summary and "OSM↔DW filter: " in summary

    check_finetune_tables(results)

    rerun = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

    # the same settings with every mapping's keys in reverse order are no change
    originals = {name: (workflow_copy / "config" / name).read_text() for name in ("config.yaml", "test.yaml")}
    for name, text in originals.items():
        (workflow_copy / "config" / name).write_text(yaml.safe_dump(reversed_keys(yaml.safe_load(text)), sort_keys=False))
    try:
        reordered = snakemake(workflow_copy, "-n", "--configfile", "config/test.yaml")
    finally:
        for name, text in originals.items():
            (workflow_copy / "config" / name).write_text(text)
    assert "Nothing to be done" in reordered.stdout + reordered.stderr, reordered.stdout[-3000:]

    # a changed fine-tuning setting of one task re-runs that task's rows only
    config = yaml.safe_load((workflow_copy / "config" / "test.yaml").read_text())
    config["finetune"]["frameworks"] = {"osm": "unet"}
    (workflow_copy / "config" / "changed.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    planned = [line for line in snakemake(workflow_copy, "-n", "--configfile", "config/changed.yaml").stdout.splitlines()
               if "wildcards: task=" in line]
    assert planned and all("task=osm" in line for line in planned)

    # changing one dataset's setting re-runs that dataset's branch and the summary, nothing else
    config = yaml.safe_load((workflow_copy / "config" / "test.yaml").read_text())
    config["synthetic"]["lsr"]["n_tiles"] = 2
    (workflow_copy / "config" / "changed.yaml").write_text(yaml.safe_dump(config))
    changed = snakemake(workflow_copy, "-n", "--configfile", "config/changed.yaml")
    text = changed.stdout + changed.stderr
    assert re.search(r"wildcards: dataset=lsr", text)
    for other in ("noldo", "dw", "osm", "dfc2020"):
        assert f"dataset={other}" not in text


@pytest.mark.slow
def test_report_bundles_every_figure_and_table_with_its_caption(test_config_run):
    workflow_copy = test_config_run
    snakemake(workflow_copy, "--report", "report.html", "--configfile", "config/test.yaml")
    html = (workflow_copy / "report.html").read_text()
    bundled = json.loads(re.search(r"var results = (\{.*?\});\s*</script>", html, re.S).group(1))
    results = workflow_copy / "results"
    figures = sorted(str(p.relative_to(workflow_copy)) for p in results.rglob("*.png"))
    # the tables written for reading: a CSV with a Markdown twin (per-run detail CSVs have none)
    tables = sorted(str(p.relative_to(workflow_copy)) for p in (results / "tables").glob("*.csv")
                    if p.with_suffix(".md").is_file())
    assert len(figures) >= 30 and len(tables) >= 7
    # every table as itself or as its Markdown twin, every figure, and the summary page
    expected = figures + [t if t in bundled else t[: -len(".csv")] + ".md" for t in tables] + ["results/report/summary.md"]
    assert sorted(bundled) == sorted(expected)
    for path, item in bundled.items():
        assert re.sub(r"<[^>]+>", "", item["caption"]).strip(), f"{path} has no caption"
        payload = base64.b64decode(item["data_uri"].split("base64,", 1)[1])
        assert payload == (workflow_copy / path).read_bytes(), path  # the file itself, embedded


def test_local_source_without_settings_names_the_dataset(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "--config", "source=local", check=False)
    assert proc.returncode != 0 and "config.local has no entry" in proc.stdout + proc.stderr


def test_a_missing_local_folder_fails_the_dry_run(workflow_copy):
    (workflow_copy / "config" / "missing.yaml").write_text(
        "source: local\ndatasets: [lsr]\nlocal: {lsr: {format: chesapeake_npz, patches_dir: no/such/dir}}\n"
    )
    proc = snakemake(workflow_copy, "-n", "--configfile", "config/missing.yaml", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "local.lsr.patches_dir: no *.npz patches in no/such/dir (no such folder)" in output


@pytest.mark.real
def test_real_chesapeake_config_runs(workflow_copy, real_dir):
    config = yaml.safe_load((workflow_copy / "config" / "real_chesapeake.yaml").read_text())
    config["local"]["lsr"]["patches_dir"] = str(real_dir / "chesapeake_wv" / "patches")
    (workflow_copy / "config" / "real_abs.yaml").write_text(yaml.safe_dump(config))
    snakemake(workflow_copy, "--configfile", "config/real_abs.yaml", "--directory", str(workflow_copy / "real_run"),
              "--snakefile", str(workflow_copy / "Snakefile"))
    card = json.loads((workflow_copy / "real_run" / "results" / "data" / "lsr" / "datacard.json").read_text())
    assert card["source"] == "local:chesapeake_npz" and card["samples"] == 8 and not card["synthetic"]


def test_cromss_can_pretrain_on_self_denoised_labels(workflow_copy):
    (workflow_copy / "config" / "denoised.yaml").write_text("cromss:\n  label_source: dw_denoised\n")
    # --forceall: plan every job even if an earlier test in this module already produced them
    proc = snakemake(workflow_copy, "-n", "--forceall", "--configfile", "config/test.yaml", "config/denoised.yaml")
    text = proc.stdout + proc.stderr
    pretrain_inputs = re.findall(r"rule pretrain_encoder:\n\s+input: ([^\n]+)", text)
    assert pretrain_inputs and all("results/data/noldo_denoised/index.csv" in i for i in pretrain_inputs)
    assert "rule denoise_labels:" in text  # the similarity stage produces them
