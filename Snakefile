# eolabels: learning land-cover maps from imperfect labels — one DAG from acquisition to tables.
# Run: snakemake --cores all            (config/config.yaml, the embedded synthetic world)
#      snakemake --cores all --configfile config/test.yaml   (tiny end-to-end scenario)

import os

# Jobs inherit a short OpenMP spin: libgomp's threads otherwise spin ~300,000 times after every torch
# parallel region, and the epitome FFT paths hand their inverse row DFT to pocketfft's threads right
# after one, which then share the cores with the spinners (bench/epitome.py, 2 cores: the 31×31 log
# joint 38 → 32 ms; direct convolution and U-Net unchanged).  Set GOMP_SPINCOUNT to override.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/acquire.smk"
include: "rules/similarity.smk"
include: "rules/epitome.smk"
include: "rules/pretrain.smk"
# method stages register their outputs in TARGETS / REPORT_TABLES (rules/common.smk)
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
        "results/report/summary.md",
    default_target: True
