"""The demo province (`app demo-data`): every domain's demo data, loaded together in one go.

``province`` drives the domains' own demo modules (accounts, training, certificates, assessments,
exams) on one connection; the console's progress bar and printing are in ``app.cli.demo``.
"""
