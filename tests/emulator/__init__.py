"""Tests of the PacSpace emulator (a package, so its conftest and module names never clash)."""
