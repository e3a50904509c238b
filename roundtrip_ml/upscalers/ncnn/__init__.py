"""ncnn .param/.bin files as PyTorch modules: the parser, the graph interpreter, and each
family's own pre- and post-processing."""
