"""Engines that run the partition function over a warehouse: `local` (process pool) and `spark`
(applyInPandas).
"""
