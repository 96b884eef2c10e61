"""Helpers for the tests of data_prep and of the later stages (no test framework needed).

``data_prep.testing.phi``: plant recognisable fake identifiers into a DICOM
cohort and look for them in everything a tool wrote or printed.
"""
