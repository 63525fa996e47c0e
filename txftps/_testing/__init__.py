# -*- test-case-name: tests.test_testing -*-
"""
The implementation of L{txftps.testing}; import from there.
"""
