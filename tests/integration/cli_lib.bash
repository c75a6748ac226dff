# cli_lib.bash: the set-up of the operator CLI's tests (sourced after lib.bash and
# campaign_lib.bash): a PKI with the vehicles named, mosquitto, one server s1 with its MQTT
# bridge, and keys of each role. Sets B (the server's URL), CA, OP, VIEWER and ADMIN (API
# keys of those roles) and exports PQOTA_SERVER and PQOTA_CA, which every pqota command
# of the tests then uses (PQOTA_API_KEY is the test's choice).

# cli_setup VIN...
cli_setup() {
	make_pki "$@"
	start_broker
	write_server_conf s1
	start_server s1
	B=$BASE_s1
	CA="$PKI/ca/ca.crt"
	make_key s1
	OP=$APIKEY
	VIEWER=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role viewer --name viewer 2>/dev/null)
	ADMIN=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role admin --name admin 2>/dev/null)
	export PQOTA_SERVER=$B PQOTA_CA=$CA
}
