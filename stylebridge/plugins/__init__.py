"""Built-in plugins.  They register through the same hooks as third-party packages."""

BUILTIN_PLUGIN_MODULES: list[str] = [
    "stylebridge.plugins.stylegan2",
    "stylebridge.cli.commands",
]
