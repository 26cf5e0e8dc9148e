"""Map the repository's top-level folders onto the `tailwire.*` import names.

setuptools' `package-dir` keeps `shared/`, `services/`, `cli/` and `testing/` at the top of
the repository while they import as `tailwire.shared`, `tailwire.services`, ...; the package
list is computed here so a new subpackage needs no edit (CONVENTIONS.md, Layout).
"""

from setuptools import find_packages, setup

ROOTS = {
    "tailwire.shared": "shared",
    "tailwire.services": "services",
    "tailwire.cli": "cli",
    "tailwire.testing": "testing",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir, package_data={"tailwire.shared": ["py.typed"]})
