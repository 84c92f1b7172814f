"""Acquisition of real data: Sentinel-1/2 and Dynamic World through Earth Engine, OSM land use through WMS.

Location sheets (:mod:`.sheets`) drive sharded jobs (:mod:`.shards`); each job fetches its locations
through a bounded, rate-limited pool (:mod:`.pool`) over one HTTP seam (:mod:`.transport`: live,
record or replay), writes every location atomically and records it in a manifest (:mod:`.manifest`);
a merge writes the common dataset layout through :class:`eolabels.data.writer.DatasetWriter`.
"""
