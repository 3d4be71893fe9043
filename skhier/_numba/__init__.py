"""skhier's compiled-kernel layer: numba's settings (:mod:`.jit`), the on-disk
kernel cache (:mod:`.cache`) and compiling ahead (:mod:`.ahead`).

Every numba function of skhier is made through :mod:`.jit`, which gives each one
a name of its own (numba's machine code is linked by name) and decides, before
any kernel is built, whether compiled code can be kept on disk.
"""
