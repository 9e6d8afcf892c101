DROP INDEX api_tokens_live_name;
DROP INDEX slos_one_active_per_pair;
