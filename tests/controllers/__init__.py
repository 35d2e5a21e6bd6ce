"""Tests of the local cluster's controllers."""
