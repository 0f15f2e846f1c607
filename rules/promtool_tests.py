"""placeholder"""
def generate_promtool_tests(specs, rule_files):
    return {}
