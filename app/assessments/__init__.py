"""年度考核与退出: yearly ratings, the two-year exit rule with due process, the year-end close."""
