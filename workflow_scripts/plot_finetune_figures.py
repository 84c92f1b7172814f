"""Snakemake entry point of rule plot_finetune_figures: unpack `snakemake`, call the library."""
from pathlib import Path

from eolabels.finetune.encoders import EncoderSource
from eolabels.finetune.stages import plot_kl, plot_maps, plot_pca
from eolabels.workflow import logged

with logged(snakemake.log[0]):
    figure = snakemake.params.figure
    sources = {r["name"]: EncoderSource(r["name"], r["kind"], r["path"], r["tag"]) for r in figure["rows"]}
    rows = {r["name"]: (sources[r["name"]], r["weights"]) for r in figure["rows"]}
    encoders = {r["encoder"] for r in figure["rows"]}
    if len(encoders) != 1:
        raise ValueError(f"figure rows use different encoders {sorted(encoders)}; list rows of one encoder in "
                         "finetune.figure_sources")
    common = dict(dataset_dir=Path(snakemake.input.index).parent, task_name=snakemake.wildcards.task,
                  ft_input=figure["input"], settings=snakemake.params.settings, encoder_name=encoders.pop(),
                  seed=snakemake.params.seed)
    plot_maps(**common, rows=rows, samples=snakemake.params.samples, out_png=snakemake.output.maps)
    pretrained = {k: v for k, v in rows.items() if v[0].kind != "random"}
    plot_kl(**common, rows=pretrained or rows, weights_png=snakemake.output.weight_kl, bn_png=snakemake.output.bn_kl)
    plot_pca(**common, sources=sources, samples=snakemake.params.samples, out_png=snakemake.output.pca)
