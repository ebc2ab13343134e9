"""Huddle's entry point and composition root: `python main.py [command]` (see `--help`).

The plugins below make the product. Each declares what it needs, so they load in dependency
order whatever the order here; `[plugins]` in huddle.toml can replace, extend or trim this list,
and installed packages add their own through the entry-point group `huddle.plugins`.
"""

PLUGINS = [
    "bot.builtin",  # help, run, status, send, people, db
    "channels.sms.plugin",  # SMS through a USB modem (the simulator in demo mode)
    "channels.slack",
    "channels.telegram",
    "channels.web",  # browser chat at /chat (the playground in demo mode)
    "channels.console",  # the terminal, standing in for every channel not configured
    "handlers.enrollment",  # invite codes
    "handlers.store",  # stores, POS webhook, imports
    "handlers.blaze",  # Blaze POS sync (with HUDDLE_BLAZE_API_KEY)
    "handlers.customers",
    "handlers.budtenders",
    "handlers.external_budtenders",  # outside budtenders: network, receipt photos for points
    "handlers.team_leads",
    "handlers.sales_managers",
    "handlers.admin",  # the owner's pages at /admin, /metrics and the Monday report
]

if __name__ == "__main__":
    from bot.cli import run

    run(PLUGINS)
