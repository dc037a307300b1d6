"""The web dashboard (optional extra ``cloaca[dashboard]``): ``cloaca dashboard`` serves
:func:`cloaca.dashboard.app.create_app` over a ManagementClient."""
