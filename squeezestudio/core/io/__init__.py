"""Files in and out: loading every model format, exports, the bundled demo files, netron's server.

Above compression in the flow because loading a ``.sqz`` or replaying recorded
substitutions needs the codec and the method registry.
"""
