"""A model as files on disk, without torch: its config.json and adapter_config.json read for the planner, its
weight files' headers checked, and the commit the local Hugging Face cache holds for a hub id.
"""
