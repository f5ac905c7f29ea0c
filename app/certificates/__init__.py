"""Certificates (行政执法证 / 行政执法监督证): rules, numbering, signing, QR codes and card rendering."""
