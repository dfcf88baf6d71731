"""Sample ids as files: path lists, CSV/JSONL, folders of links or copies, WebDataset shards, saved datasets."""

from curata.exporting.export import FORMATS, export, read_ids, sample_records

__all__ = ["FORMATS", "export", "read_ids", "sample_records"]
