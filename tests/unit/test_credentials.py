"""stackha.credentials: the one reader of the key=value files monitoring users come from."""

import pytest
from stackha.credentials import CredentialsFileError, read_credentials_file

SECRET = "pa55=w0rd 'secret'"


def read(tmp_path, text, env_prefix=""):
    """read_credentials_file of a file holding ``text``."""
    (tmp_path / "credentials").write_text(text)
    return read_credentials_file(str(tmp_path / "credentials"), env_prefix)


def test_key_value_lines_with_comments_and_spaces(tmp_path):
    text = (
        "# the monitoring user\n"
        "  username=monitor  \n"
        f"password = {SECRET}\n"
        "not a setting\n"
        "\n"
        "   # an indented comment=1\n"
        "empty=\n"
    )
    assert read(tmp_path, text) == {"username": "monitor", "password": SECRET, "empty": ""}


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("password='p w'", "p w"),
        ('password="p w"', "p w"),
        ("password='p\"", "'p\""),  # quotes that do not match are the value's own
        ("password='", "'"),
        ("password=p'w'", "p'w'"),
    ],
)
def test_a_value_in_matching_quotes_is_taken_without_them(tmp_path, line, value):
    assert read(tmp_path, line + "\n")["password"] == value


def test_the_last_line_of_a_key_wins(tmp_path):
    assert read(tmp_path, "username=old\nusername=new\n") == {"username": "new"}


def test_an_openrc_file_reads_with_its_prefix_dropped(tmp_path):
    """The file an operator has for the openstack command: export OS_*=... lines."""
    openrc = (
        "export OS_USERNAME=admin\n"
        "export  OS_PASSWORD='adminpass'\n"
        "export OS_AUTH_URL=http://controller:5000/v3\n"
        "project_name=admin\n"
    )
    assert read(tmp_path, openrc, env_prefix="OS_") == {
        "username": "admin",
        "password": "adminpass",
        "auth_url": "http://controller:5000/v3",
        "project_name": "admin",
    }
    # without a prefix to drop, the names stay as written
    assert set(read(tmp_path, openrc)) == {
        "OS_USERNAME",
        "OS_PASSWORD",
        "OS_AUTH_URL",
        "project_name",
    }


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(CredentialsFileError, match=f"^credentials file {tmp_path}/none: No such"):
        read_credentials_file(str(tmp_path / "none"))
    with pytest.raises(CredentialsFileError, match=f"^credentials file {tmp_path}: Is a directory"):
        read_credentials_file(str(tmp_path))


def test_a_file_that_is_not_text_is_named_without_its_content(tmp_path):
    binary = tmp_path / "binary"
    binary.write_bytes(b"password=s3cret\xff\xfe\n")
    with pytest.raises(CredentialsFileError) as caught:
        read_credentials_file(str(binary))
    assert str(caught.value) == f"credentials file {binary} is not UTF-8 text"
