"""The Open Supporter Data Interface (OSDI 1.1): what tools that read Action Network read."""
