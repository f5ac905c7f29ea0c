"""行政执法人员资格管理系统: qualification and certification of administrative law-enforcement officers."""
